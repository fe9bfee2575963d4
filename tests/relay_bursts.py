"""Bursts of adds from relayed clients and an owner's own, against real cluster nodes:
what the relay red-team tests share (each answer once, in order; the counter exact)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import orjson
import trio

from .owner_app import serve_owner_rooms
from .redis_server import RedisServer
from .sockets import TEXT, RawClient, client_frame, open_raw

GAME = "/rooms/game/websocket"
ADD = b'{"type": "add"}'
PATIENCE = 60.0
BURST = 200

Dropped = Literal["owner", "client's node", "both"]


def relay_ids(redis_server: RedisServer) -> set[str]:
    """The ids of the relay connections Redis has now."""
    listed = redis_server.command("CLIENT", "LIST").decode()
    return {
        line.split()[0].removeprefix("id=")
        for line in listed.splitlines()
        if " name=trio_rooms.relays." in line
    }


def kill(redis_server: RedisServer, ids: set[str]) -> None:
    for client_id in ids:
        redis_server.command("CLIENT", "KILL", "ID", client_id)


class Reader:
    """Reads one client's frames: its `counted` stored values, welcomes, close."""

    def __init__(self, name: str, client: RawClient, strict: bool = True) -> None:
        self.strict = strict  # the room never restarts: its memory's count is the stored one
        self.name = name
        self.client = client
        self.counts: list[int] = []
        self.welcomes: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []
        self.closed: int | None = None
        self.ended = False
        self.changed = trio.Event()
        self.why = ""
        self.log: list[tuple[float, str]] = []

    async def run(self) -> None:
        try:
            while True:
                frame = await self.client.receive_frame()
                if frame is None:
                    self.why = f"eof at {trio.current_time():.1f}"
                    break
                if frame.opcode == 8:
                    self.closed = frame.close_code
                    break
                if frame.opcode != TEXT:
                    continue
                message: dict[str, Any] = orjson.loads(frame.payload)
                if message.get("type") == "counted":
                    if self.strict:
                        assert message["stored"] == message["local"], (self.name, message)
                    self.counts.append(message["stored"])
                elif message.get("type") == "welcome":
                    self.welcomes.append(message)
                    self.log.append(
                        (trio.current_time(), f"welcome {message} after {len(self.counts)}")
                    )
                else:
                    self.others.append(message)
                self.changed.set()
                self.changed = trio.Event()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.why = f"{exc!r} at {trio.current_time():.1f}"
        finally:
            self.ended = True
            self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.counts) < count:
            assert not self.ended, repr(
                (
                    self.name,
                    self.why,
                    self.closed,
                    len(self.counts),
                    self.counts[-5:],
                    self.others,
                    self.log,
                    f"now {trio.current_time():.1f}",
                    count,
                )
            )
            await self.changed.wait()

    async def wait_welcomes(self, count: int) -> None:
        while len(self.welcomes) < count:
            assert not self.ended, (self.name, self.closed, self.counts[-5:])
            await self.changed.wait()


def burst(count: int) -> bytes:
    return client_frame(TEXT, ADD) * count


def check_each_once_in_order(readers: list[Reader], per_client: int) -> None:
    seen: list[int] = []
    for reader in readers:
        assert len(reader.counts) == per_client, (reader.name, len(reader.counts))
        assert reader.counts == sorted(reader.counts), reader.name
        assert len(set(reader.counts)) == len(reader.counts), reader.name
        seen += reader.counts
    assert sorted(seen) == list(range(1, len(seen) + 1))


@asynccontextmanager
async def open_cluster(
    redis_server: RedisServer,
    owner_clients: int,
    relayed_clients: int,
    query: str = "",
    strict: bool = True,
) -> AsyncGenerator[tuple[list[Reader], list[Reader], set[str], set[str]]]:
    url = redis_server.url
    async with AsyncExitStack() as stack:
        _, port_a = await stack.enter_async_context(serve_owner_rooms(url, "a"))
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)

        async def join(port: int, name: str) -> Reader:
            """A client of the node at ``port``, welcomed by ``a``, the owner."""
            client = await stack.enter_async_context(open_raw(port, GAME + query))
            reader = Reader(name, client, strict)
            nursery.start_soon(reader.run)
            await reader.wait_welcomes(1)
            assert reader.welcomes[0]["node"] == "a"
            return reader

        owners = [await join(port_a, f"a{n}") for n in range(owner_clients)]
        owner_ids = relay_ids(redis_server)
        _, port_b = await stack.enter_async_context(serve_owner_rooms(url, "b"))
        relayed = [await join(port_b, f"b{n}") for n in range(relayed_clients)]
        client_ids = relay_ids(redis_server) - owner_ids
        assert len(owner_ids) == len(client_ids) == 2
        yield owners, relayed, owner_ids, client_ids


@asynccontextmanager
async def bursting(readers: list[Reader], count: int = BURST) -> AsyncGenerator[None]:
    """Each reader's client sends ``count`` adds at once, each in a task of its own: the
    block runs meanwhile, and the context ends once all are sent."""
    async with trio.open_nursery() as nursery:
        for reader in readers:
            nursery.start_soon(reader.client.send, burst(count))
        yield
