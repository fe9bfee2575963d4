"""A room with presence, and a client that keeps the presence it is sent, for the tests.

Clients say what to do (``Join``, ``Update``, ``Leave``, ``Watch``); the room answers
each with ``Done`` carrying the request's ``seq``, so a test knows when it was handled.
`PresencePeer` applies the ``$presence`` frames it receives, as a browser would.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import assert_never

import attrs
import orjson
import trio
import trio_websocket

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session
from trio_rooms._wire import (
    PresenceDiffFrame,
    PresenceStateFrame,
    PresenceWireMeta,
    parse_library_frame,
)
from trio_rooms.codec import JsonCodec

from .processes import open_server_process, serve_until_signalled
from .sockets import open_client


@attrs.frozen
class Device:
    name: str
    typing: bool = False


@attrs.frozen
class Join(Message):
    seq: int
    key: str
    device: str


@attrs.frozen
class Update(Message):
    seq: int
    device: str
    typing: bool


@attrs.frozen
class Leave(Message):
    seq: int


@attrs.frozen
class Watch(Message):
    seq: int


@attrs.frozen
class Burst(Message):
    """Join under ``key``, then update ``updates`` times, and leave if ``leave``: one event."""

    seq: int
    key: str
    updates: int
    leave: bool = False


@attrs.frozen
class Done(Message):
    seq: int
    error: str | None = None


ClientMsg = Join | Update | Leave | Watch | Burst


class PresenceSession(Session[None, Done, ClientMsg, "PresenceRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        key = self.request.query.get("key")
        if key is not None:
            self.join_presence(key, Device(self.request.query.get("device", "web")))
        if "watch" in self.request.query:
            self.subscribe_presence()

    async def on_message(self, message: ClientMsg) -> None:
        error = None
        try:
            match message:
                case Join(key=key, device=device):
                    self.join_presence(key, Device(device))
                case Update(device=device, typing=typing):
                    self.update_presence(Device(device, typing))
                case Leave():
                    self.leave_presence()
                case Watch():
                    self.subscribe_presence()
                case Burst(key=key, updates=updates, leave=leave):
                    self.join_presence(key, Device("burst"))
                    for n in range(updates):
                        self.update_presence(Device("burst", typing=n % 2 == 0))
                    if leave:
                        self.leave_presence()
                case _:
                    assert_never(message)
        except (trio_rooms.PresenceLimitError, RuntimeError) as exc:
            error = str(exc)
        self.send(Done(message.seq, error))


class PresenceRoom(Room[PresenceSession]):
    presence = trio_rooms.Presence(Device)


client_codec = JsonCodec(Join, Update, Leave, Watch, Burst)
server_codec = JsonCodec(Done)

#: key -> [(ref, meta as sent)], the order of each key's list as sent.
State = dict[str, list[tuple[str, object]]]


def apply_diff(state: State, frame: PresenceDiffFrame) -> None:
    """Apply a diff as a client does: leaves by ref, then joins."""
    for key, metas in frame.leaves.items():
        refs = {meta.ref for meta in metas}
        kept = [item for item in state.get(key, []) if item[0] not in refs]
        assert len(kept) == len(state.get(key, [])) - len(refs), "a leave of a ref not held"
        if kept:
            state[key] = kept
        else:
            state.pop(key, None)
    for key, metas in frame.joins.items():
        state.setdefault(key, []).extend((meta.ref, meta.meta) for meta in metas)


def as_state(metas: dict[str, list[PresenceWireMeta]] | object) -> State:
    assert isinstance(metas, dict)
    return {
        key: [(meta.ref, meta.meta) for meta in items]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        for key, items in metas.items()  # pyright: ignore[reportUnknownVariableType]
    }


class PresencePeer:
    """A client of the presence room over a real socket, keeping what it was sent."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.state: State | None = None
        #: Every diff received, in order (joins and leaves as refs).
        self.diffs: list[PresenceDiffFrame] = []
        self._seq = 0

    async def request(self, message: ClientMsg) -> Done:
        """Send ``message`` and read (applying presence frames) until its ``Done``."""
        await self.ws.send_message(client_codec.encode(message).decode())
        while True:
            reply = await self.next()
            if isinstance(reply, Done) and reply.seq == message.seq:
                return reply

    def seq(self) -> int:
        self._seq += 1
        return self._seq

    async def join(self, key: str, device: str) -> Done:
        return await self.request(Join(self.seq(), key, device))

    async def update(self, device: str, typing: bool) -> Done:
        return await self.request(Update(self.seq(), device, typing))

    async def leave(self) -> Done:
        return await self.request(Leave(self.seq()))

    async def watch(self) -> Done:
        return await self.request(Watch(self.seq()))

    async def burst(self, key: str, updates: int, *, leave: bool = False) -> Done:
        return await self.request(Burst(self.seq(), key, updates, leave))

    async def next(self) -> Done | PresenceStateFrame | PresenceDiffFrame:
        """The next frame, its presence applied."""
        frame = await self.ws.get_message()
        parsed = parse_library_frame(frame)
        match parsed:
            case PresenceStateFrame():
                self.state = as_state(parsed.state)
                return parsed
            case PresenceDiffFrame():
                assert self.state is not None, "a diff before the state"
                apply_diff(self.state, parsed)
                self.diffs.append(parsed)
                return parsed
            case None:
                return server_codec.decode(frame)
            case _:
                raise AssertionError(f"unexpected library frame {parsed!r}")

    async def until(self, predicate: Callable[[State], bool]) -> State:
        """Read until ``predicate(state)`` holds; return the state."""
        while self.state is None or not predicate(self.state):
            await self.next()
        return self.state


@asynccontextmanager
async def connect(port: int, room: str = "lobby", query: str = "") -> AsyncGenerator[PresencePeer]:
    resource = f"/rooms/{room}/websocket" + (f"?{query}" if query else "")
    async with open_client(port, resource) as (ws, _):
        yield PresencePeer(ws)


def devices(state: State) -> dict[str, list[str]]:
    """The device names per key, in order: what a test compares at a glance."""
    return {
        key: [orjson.loads(orjson.dumps(meta))["name"] for _, meta in metas]
        for key, metas in state.items()
    }


# ------------------------------------------------------------ a node of a cluster


async def main(url: str, port: int, ttl: float) -> None:
    # Imported here: the tests that run one node in-process never load coredis.
    from trio_rooms.backplane.redis import RedisBackplane

    config = trio_rooms.RoomsConfig(rate_limit=None, max_connections_per_address=10_000)
    async with trio_rooms.open_rooms(
        PresenceRoom, config=config, backplane=RedisBackplane(url, ttl=ttl)
    ) as rooms:
        await serve_until_signalled(rooms, port)


def open_presence_node(
    url: str, ttl: float, port: int = 0
) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """A node of the presence room on Redis ``url`` as a subprocess: it and its port."""
    return open_server_process("tests.presence_app", url, str(port), str(ttl))


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
