"""The room the TypeScript client's tests talk to, on SQLite so that a restart keeps sessions.

Run as ``python -m tests.ts.server DB_PATH [PORT]`` from the repository root: serves on
127.0.0.1 (PORT 0 or none: a free port; a restarted server can take the same one again),
prints ``PORT <n>`` once listening, and shuts down gracefully (1001) on SIGINT or SIGTERM.
The client's schema for it is ``clients/typescript/test/room.schema.ts`` (the module the
schema export generates); ``stale.schema.ts`` beside it is an older client's.

Rooms keep a replay log (the default bounds); those named ``short-...`` keep only 10
messages, so a client away for longer gets ``$resync`` and a `Snapshot`. A `Flood` can
cut another session's socket with no close frame, as a network drop would: the server
serves each connection itself (`serve_stream`) to hold its socket.

The room has presence (`Device` metadata): a connection with ``?presence`` subscribes in
``on_connect`` (so again on every resume), and the presence requests join, update and
leave, each answered once done.
"""

from __future__ import annotations

import signal
import socket
import sys
from typing import assert_never

import attrs
import trio
import trio.lowlevel

import trio_rooms
from trio_rooms import (
    ConnectRequest,
    Message,
    Reject,
    ReplayLimits,
    Request,
    RequestError,
    Room,
    RoomsConfig,
    Session,
    replies,
)
from trio_rooms.transports.websocket import serve_stream

#: A small limit, so that a test can reach it.
MAX_REQUESTS_IN_FLIGHT = 8

# ------------------------------------------------------------------ client messages


@attrs.frozen
class Echo(Message):
    """Answered with `Echoed` of the same fields."""

    text: str
    numbers: tuple[int, ...]


@attrs.frozen
class SetName(Message):
    """Stores ``name`` in the session's data with ``update()``; answered with `NameSet`."""

    name: str


@attrs.frozen
class WhoAmI(Message):
    """Answered with `You`: the session's id and stored name."""


@attrs.frozen
class Bye(Message):
    """The server closes this connection with ``code`` and ``reason``."""

    code: int
    reason: str


@attrs.frozen
class SendOdd(Message):
    """Answered with `Odd` and `Unlisted`, which an older client's schema does not accept,
    then `Echoed` with the text ``"after odd"``."""


@attrs.frozen
class Reverse(Message):
    """Answered with `Reversed`: ``data`` and each of ``parts`` byte-reversed."""

    data: bytes
    parts: list[bytes]
    note: bytes | None = None


# ------------------------------------------------------------------ server messages


@attrs.frozen
class Score(Message):
    player: str
    points: int


@attrs.frozen
class Unknown(Message):
    player: str


@attrs.frozen
class Waited(Message):
    key: str


@attrs.frozen
class Released(Message):
    key: str
    #: How many `Wait` handlers ever started on the key in this server process.
    started: int


@attrs.frozen
class Tallied(Message):
    key: str
    count: int


@attrs.frozen
class Flooded(Message):
    count: int


@attrs.frozen
class Tick(Message):
    n: int


@attrs.frozen
class Snapshot(Message):
    """What a resynced session gets: how many ticks the room has sent (this process)."""

    ticks: int


# ------------------------------------------------------------------ client requests


@attrs.frozen
class GetScore(Request[Score | Unknown]):
    """`Score` of a known player, `Unknown` of another; no name is refused."""

    player: str


@attrs.frozen
class Wait(Request[Waited]):
    """Answered once ``key`` is released (other events run meanwhile)."""

    key: str


@attrs.frozen
class Release(Request[Released]):
    """Releases the waits on ``key``, now and later."""

    key: str


@attrs.frozen
class Tally(Request[Tallied]):
    """Counts one more on ``key``: the answer says how many times it ran."""

    key: str


@attrs.frozen
class Flood(Request[Flooded]):
    """Broadcasts ``count`` `Tick`s numbered from ``start`` to the room's other sessions.

    With ``cut`` (a session id), that session's socket is cut before tick number
    ``cut_at`` (counted from 0), and the flood waits for it to resume before tick
    ``cut_at + away``. With ``hold`` it does not wait: from the cut, this server
    refuses every resume, so that the session can only come back after a restart.
    """

    count: int
    start: int = 0
    cut: str | None = None
    cut_at: int = 0
    away: int = 0
    hold: bool = False


@attrs.frozen
class PresenceDone(Message):
    """What the presence requests answer: how many presences the room has now."""

    count: int


@attrs.frozen
class JoinPresence(Request[PresenceDone]):
    key: str
    device: str


@attrs.frozen
class UpdatePresence(Request[PresenceDone]):
    device: str
    typing: bool


@attrs.frozen
class LeavePresence(Request[PresenceDone]):
    pass


@attrs.frozen
class Device:
    """The room's presence metadata."""

    name: str
    typing: bool = False


ClientMsg = (
    Echo
    | SetName
    | WhoAmI
    | Bye
    | SendOdd
    | Reverse
    | GetScore
    | Wait
    | Release
    | Tally
    | Flood
    | JoinPresence
    | UpdatePresence
    | LeavePresence
)

# ------------------------------------------------------------------ server messages


@attrs.frozen
class Echoed(Message):
    text: str
    numbers: tuple[int, ...]


@attrs.frozen
class NameSet(Message):
    name: str


@attrs.frozen
class You(Message):
    session_id: str
    name: str


@attrs.frozen
class Odd(Message):
    """An older client's schema says ``value`` is a number."""

    value: str


@attrs.frozen
class Unlisted(Message):
    """Not in an older client's schema at all."""


@attrs.frozen
class Reversed(Message):
    data: bytes
    parts: list[bytes]
    size: int
    note: bytes | None = None


ServerMsg = (
    Echoed
    | NameSet
    | You
    | Odd
    | Unlisted
    | Reversed
    | Score
    | Unknown
    | Waited
    | Released
    | Tallied
    | Flooded
    | Tick
    | Snapshot
    | PresenceDone
)


@attrs.define
class Named:
    name: str = "anon"


class TestSession(Session[Named, ServerMsg, ClientMsg, "TestRoom"]):
    @classmethod
    async def authorize(cls, request: ConnectRequest) -> None:
        if _server.hold_resumes and request.query.get("resume"):
            raise Reject(503, "resumes are held until the server restarts")

    async def create_data(self, request: ConnectRequest) -> Named:
        return Named()

    async def on_connect(self) -> None:
        if "presence" in self.request.query:
            self.subscribe_presence()

    async def on_resume(self) -> None:
        self.room.resumed(self.id)

    async def on_resync(self) -> None:
        self.send(Snapshot(ticks=self.room.ticks))

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case Echo(text=text, numbers=numbers):
                self.send(Echoed(text=text, numbers=numbers))
            case SetName(name=name):
                self.data.name = name
                await self.update()  # durable before it is acknowledged
                self.send(NameSet(name=name))
            case WhoAmI():
                self.send(You(session_id=self.id, name=self.data.name))
            case Bye(code=code, reason=reason):
                await self.close(code, reason)
            case SendOdd():
                self.send(Odd(value="not a number"))
                self.send(Unlisted())
                self.send(Echoed(text="after odd", numbers=()))
            case Reverse(data=data, parts=parts, note=note):
                self.send(
                    Reversed(
                        data=data[::-1], parts=[p[::-1] for p in parts], size=len(data), note=note
                    )
                )
            case (
                GetScore()
                | Wait()
                | Release()
                | Tally()
                | Flood()
                | JoinPresence()
                | UpdatePresence()
                | LeavePresence()
            ):
                pass  # answered by the handlers below
            case _:
                assert_never(message)

    @replies(GetScore)
    async def get_score(self, request: GetScore) -> Score | Unknown:
        if not request.player:
            raise RequestError("a player must be named")
        points = self.room.scores.get(request.player)
        return Unknown(request.player) if points is None else Score(request.player, points)

    @replies(Wait)
    async def wait(self, request: Wait) -> Waited:
        room = self.room
        room.started[request.key] = room.started.get(request.key, 0) + 1
        released = room.waits.setdefault(request.key, trio.Event())
        async with room.unlocked():
            await released.wait()
        return Waited(request.key)

    @replies(Release)
    async def release(self, request: Release) -> Released:
        room = self.room
        room.waits.setdefault(request.key, trio.Event()).set()
        return Released(request.key, started=room.started.get(request.key, 0))

    @replies(Tally)
    async def tally(self, request: Tally) -> Tallied:
        count = self.room.tallies[request.key] = self.room.tallies.get(request.key, 0) + 1
        return Tallied(request.key, count)

    @replies(Flood)
    async def flood(self, request: Flood) -> Flooded:
        room = self.room
        back: trio.Event | None = None
        for index in range(request.count):
            if request.cut is not None and index == request.cut_at:
                back = room.expect_resume(request.cut)
                _server.hold_resumes = _server.hold_resumes or request.hold
                client = room.sessions[request.cut].request.client
                assert client is not None
                _server.cut(client)
            if back is not None and not request.hold and index == request.cut_at + request.away:
                async with room.unlocked():
                    await back.wait()
            room.ticks += 1
            self.broadcast(Tick(request.start + index), exclude_self=True)
            if index % 10 == 9:
                async with room.unlocked():  # let a resume in, mid-flood
                    await trio.lowlevel.checkpoint()
        return Flooded(request.count)

    @replies(JoinPresence)
    async def join(self, request: JoinPresence) -> PresenceDone:
        self.join_presence(request.key, Device(request.device))
        return PresenceDone(self.room.presence.count())

    @replies(UpdatePresence)
    async def update_device(self, request: UpdatePresence) -> PresenceDone:
        self.update_presence(Device(request.device, request.typing))
        return PresenceDone(self.room.presence.count())

    @replies(LeavePresence)
    async def leave(self, request: LeavePresence) -> PresenceDone:
        self.leave_presence()
        return PresenceDone(self.room.presence.count())


class TestRoom(Room[TestSession]):
    presence = trio_rooms.Presence(Device)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.scores = {"ann": 3}
        self.waits: dict[str, trio.Event] = {}
        self.started: dict[str, int] = {}
        self.tallies: dict[str, int] = {}
        self.ticks = 0
        self._resumes: dict[str, trio.Event] = {}

    def expect_resume(self, session_id: str) -> trio.Event:
        """An event set when the session ``session_id`` next resumes."""
        event = self._resumes[session_id] = trio.Event()
        return event

    def resumed(self, session_id: str) -> None:
        event = self._resumes.pop(session_id, None)
        if event is not None:
            event.set()


class ShortLogRoom(TestRoom):
    replay = ReplayLimits(max_messages=10)


def make_room(name: str) -> TestRoom:
    return ShortLogRoom(name) if name.startswith("short-") else TestRoom(name)


class _Server:
    """The connections this process serves, by peer address, so that one can be cut."""

    def __init__(self) -> None:
        self.streams: dict[tuple[str, int], trio.SocketStream] = {}
        self.hold_resumes = False

    async def serve(self, rooms: trio_rooms.Rooms[TestRoom], stream: trio.SocketStream) -> None:
        host, port, *_ = stream.socket.getpeername()
        peer = (str(host), int(port))
        self.streams[peer] = stream
        try:
            await serve_stream(rooms, stream)
        finally:
            del self.streams[peer]

    def cut(self, peer: tuple[str, int]) -> None:
        """End the connection from ``peer`` at once, with no close frame."""
        stream = self.streams.get(peer)
        if stream is not None:
            stream.socket.shutdown(socket.SHUT_RDWR)


_server = _Server()


async def main(path: str, port: int) -> None:
    storage = trio_rooms.SqliteStorage(path)
    config = RoomsConfig(max_requests_in_flight=MAX_REQUESTS_IN_FLIGHT)
    async with (
        trio_rooms.open_rooms(make_room, storage=storage, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        bound: int = listeners[0].socket.getsockname()[1]

        async def serve(stream: trio.SocketStream) -> None:
            await _server.serve(rooms, stream)

        await nursery.start(trio.serve_listeners, serve, listeners)
        print(f"PORT {bound}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
