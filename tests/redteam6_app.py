"""A room for the red team of the answers a session gives after its client went
(tests/test_redteam6_last_answers.py): adds answered with their count, shouts broadcast
to the room, raw bytes, a goodbye from ``on_close``; the room keeps the order in which
it sent every frame, and tells a test when its state changed (no sleeps)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import msgpack
import orjson
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, RoomsConfig, Session, SqliteStorage
from trio_rooms._core.replay import LogEntry
from trio_rooms.storage import SessionRecord, Storage

from .delegating_storage import DelegatingStorage
from .sockets import BINARY, CLOSE, PING, TEXT, RawClient, client_frame

GAME = "/rooms/game/websocket"


@attrs.frozen
class Add(Message):
    pass


@attrs.frozen
class Shout(Message):
    pass


@attrs.frozen
class Blob(Message):
    pass


@attrs.frozen
class Counted(Message):
    n: int


@attrs.frozen
class Shouted(Message):
    k: int


@attrs.frozen
class Bye(Message):
    n: int


ClientMsg = Add | Shout | Blob
ServerMsg = Counted | Shouted | Bye


class GameSession(Session[None, ServerMsg, ClientMsg, "GameRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: ClientMsg) -> None:
        room = self.room
        match message:
            case Add():
                await room.released.wait()
                if room.permits is not None:
                    await room.permits.acquire()
                if room.work:
                    await trio.sleep(room.work)  # sync-ok: the app's own slow work, on purpose
                room.count += 1
                if room.read_storage:
                    await room.storage.get(f"never-{room.count}", int)
                await room.storage.put("count", room.count)
                room.order.append(("counted", self.id, room.count))
                self.send(Counted(n=room.count))
            case Shout():
                room.shouts += 1
                room.order.append(("shouted", "*", room.shouts))
                self.broadcast(Shouted(k=room.shouts))
            case Blob():
                await room.released.wait()
                room.blobs += 1
                room.order.append(("blob", self.id, room.blobs))
                self.send_bytes(b"blob-%d" % room.blobs)
        room.changed()

    async def on_connect(self) -> None:
        self.room.joined.setdefault(self.id, len(self.room.order))

    async def on_close(self, code: int, reason: str) -> None:
        room = self.room
        if room.bye:
            room.order.append(("bye", self.id, room.count))
            self.send(Bye(n=room.count))
        room.closes.append(self.id)
        room.changed()


class GameRoom(Room[GameSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.count = 0
        self.shouts = 0
        self.blobs = 0
        #: Every add (and blob) waits for it: the reader reads ahead meanwhile.
        self.released = trio.Event()
        #: If set, each add takes one of its permits first.
        self.permits: trio.Semaphore | None = None
        #: Seconds an add takes (0: none).
        self.work = 0.0
        #: An add reads the storage too (a key never written: not cached).
        self.read_storage = False
        #: ``on_close`` sends a `Bye` to its own session.
        self.bye = False
        #: What the room sent, in order: (kind, session id or "*" for all, number).
        self.order: list[tuple[str, str, int]] = []
        #: The sessions whose ``on_close`` ran, in order (one id per run).
        self.closes: list[str] = []
        #: Where in ``order`` each session first joined.
        self.joined: dict[str, int] = {}
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait until ``check()`` holds, woken by the room's changes."""
        while not check():
            await self._changed.wait()

    def going(self) -> dict[str, Any]:
        """The room's sessions whose clients went that it still waits for (a peek)."""
        runner = self._runner  # a subclass's own attribute
        going: dict[str, Any] = runner._going  # pyright: ignore[reportPrivateUsage] - the test peeks
        return going

    async def all_gone(self) -> None:
        """Wait until every session the room holds as going has ended (its event)."""
        for _, ended, _ in tuple(self.going().values()):
            await ended.wait()

    async def resumes_waiting(self, session_id: str, count: int) -> None:
        """Wait until ``count`` resumes wait for the going session ``session_id`` to end."""
        while True:
            going = self.going().get(session_id)
            if going is not None and going[1].statistics().tasks_waiting >= count:
                return
            await trio.testing.wait_all_tasks_blocked()

    async def logged_to(self, session_id: str) -> list[LogEntry]:
        """The entries of the room's replay log (as stored) sent to ``session_id`` alone."""
        state = self._runner.state
        await state.flush()
        frames = await state.storage.load_frames(self.name)
        entries = [LogEntry.unpack(frame) for frame in frames]
        return [entry for entry in entries if entry.to == session_id]

    def for_session(self, session_id: str) -> list[tuple[str, int]]:
        """What the room sent that is for ``session_id`` since it first joined, in the
        order it sent it."""
        since = self.order[self.joined[session_id] :]
        return [(kind, n) for kind, to, n in since if to in ("*", session_id)]


class HoldingStorage(DelegatingStorage):
    """Delegates to ``inner``; holds the next load of one session's record if asked to."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self._held: str | None = None
        #: Set once the held load has arrived; the test then sets ``go``.
        self.arrived = trio.Event()
        self.go = trio.Event()
        #: Set once a claim of the session whose load was held returned.
        self.claimed = trio.Event()
        self._claiming: str | None = None

    def hold_next_load(self, session_id: str) -> None:
        self._held = session_id
        self._claiming = session_id

    def watch_next_claim(self, session_id: str) -> None:
        """Set ``claimed`` once the next claim of ``session_id`` returned (not held)."""
        self._claiming = session_id

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        if session_id == self._held:
            self._held = None
            self.arrived.set()
            await self.go.wait()
        return await super().load_session(room, session_id)

    async def claim_session(
        self,
        room: str,
        session_id: str,
        *,
        token_hash: bytes,
        new_token_hash: bytes,
        expires_at: float,
        fence: int = 0,
    ) -> SessionRecord | None:
        claimed = await super().claim_session(
            room,
            session_id,
            token_hash=token_hash,
            new_token_hash=new_token_hash,
            expires_at=expires_at,
            fence=fence,
        )
        if session_id == self._claiming:
            self._claiming = None
            self.claimed.set()
        return claimed


@attrs.define
class Served:
    rooms: list[GameRoom]
    port: int
    cancel: trio.CancelScope
    storage: HoldingStorage

    @property
    def room(self) -> GameRoom:
        return self.rooms[0]


@asynccontextmanager
async def serve_game(
    tmp_path: Path,
    config: RoomsConfig | None = None,
    *,
    setup: Callable[[GameRoom], None] | None = None,
) -> AsyncGenerator[Served]:
    """A server of `GameRoom` on SQLite, on 127.0.0.1 port 0; ``setup`` runs on each room."""
    made: list[GameRoom] = []

    def factory(name: str) -> GameRoom:
        room = GameRoom(name)
        if setup is not None:
            setup(room)
        made.append(room)
        return room

    storage = HoldingStorage(SqliteStorage(tmp_path / "rooms.db"))
    async with (
        trio_rooms.open_rooms(factory, storage=storage, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield Served(made, port, nursery.cancel_scope, storage)
        nursery.cancel_scope.cancel()


def message(kind: str, wire: str = "json") -> bytes:
    """A client frame carrying the message ``{"type": kind}`` in ``wire``."""
    if wire == "json":
        return client_frame(TEXT, orjson.dumps({"type": kind}))
    packed: bytes = msgpack.packb({"type": kind})
    return client_frame(BINARY, packed)


@attrs.define
class Got:
    """What a client read: its user frames, as (kind, number), and how it ended."""

    frames: list[tuple[str, int]] = attrs.Factory(list[tuple[str, int]])
    close_code: int | None = None
    ended: bool = False


def _parse(opcode: int, payload: bytes, wire: str) -> dict[str, Any] | tuple[str, int]:
    if opcode == BINARY and payload.startswith(b"blob-"):
        return ("blob", int(payload[5:]))
    decoded: dict[str, Any] = (
        orjson.loads(payload) if opcode == TEXT else msgpack.unpackb(payload, raw=False)
    )
    if "type" not in decoded:
        return decoded  # a library frame
    kind = str(decoded["type"])
    number = decoded.get("n", decoded.get("k"))
    assert isinstance(number, int), decoded
    return (kind, number)


async def read_session(client: RawClient, wire: str = "json") -> dict[str, Any]:
    """The ``$session`` frame, which comes first."""
    while True:
        frame = await client.receive_frame()
        assert frame is not None, "the connection ended before its $session frame"
        if frame.opcode == PING:
            continue
        parsed = _parse(frame.opcode, frame.payload, wire)
        assert isinstance(parsed, dict), parsed
        session: dict[str, Any] = parsed["$session"]
        return session


async def read_until(
    client: RawClient, got: Got, done: Callable[[Got], bool], wire: str = "json"
) -> Got:
    """Read user frames into ``got`` until ``done(got)``, the close frame or the end."""
    while not done(got):
        frame = await client.receive_frame()
        if frame is None:
            got.ended = True
            return got
        if frame.opcode == PING:
            continue
        if frame.opcode == CLOSE:
            got.close_code = frame.close_code
            return got
        parsed = _parse(frame.opcode, frame.payload, wire)
        assert not isinstance(parsed, dict), f"unexpected library frame {parsed}"
        got.frames.append(parsed)
    return got
