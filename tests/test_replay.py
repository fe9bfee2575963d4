"""Replay on resume over real sockets: missed frames in order, restarts, bounds, pacing."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
import trio_websocket

import trio_rooms
from trio_rooms import Rooms, RoomsConfig, SqliteStorage, Storage
from trio_rooms.client import Reconnected, ReconnectPolicy, Resynced, open_room_client
from trio_rooms.storage import LoggedFrame

from .delegating_storage import DelegatingStorage
from .redis_server import RedisServer
from .replay_app import (
    Leave,
    LongLogRoom,
    NoReplayRoom,
    Note,
    NoteRoom,
    ShortLogRoom,
    Snapshot,
)
from .sockets import open_client

FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=20)


@asynccontextmanager
async def _serve(
    factory: Callable[[str], NoteRoom], storage: Storage
) -> AsyncGenerator[tuple[Rooms[Any], int]]:
    async with (
        trio_rooms.open_rooms(factory, storage=storage, config=RoomsConfig()) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def _frame(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        message = await ws.get_message()
    content: dict[str, Any] = orjson.loads(message)
    return content


async def _connect_and_leave(port: int, room: NoteRoom, notes: int) -> tuple[str, int]:
    """Open a resumable session, read ``notes`` live notes, close; its token and count."""
    closes = room.closes
    async with open_client(port, "/rooms/r/websocket?resume=&seen=0") as (ws, _):
        session = (await _frame(ws))["$session"]
        assert session["replayed"] == 0
        for _ in range(notes):
            room.note()
        for n in range(notes):
            assert (await _frame(ws))["n"] == room.notes - notes + n
    with trio.fail_after(10):
        await room.wait_closes(closes + 1)
    return session["token"], notes


async def _resume(
    port: int, token: str, seen: int
) -> AsyncGenerator[tuple[trio_websocket.WebSocketConnection, dict[str, Any]]]:
    async with open_client(port, f"/rooms/r/websocket?resume={token}&seen={seen}") as (ws, _):
        yield ws, (await _frame(ws))["$session"]


_resumed = asynccontextmanager(_resume)


async def _expect_replay_then_live(
    ws: trio_websocket.WebSocketConnection, session: dict[str, Any], room: NoteRoom, first: int
) -> None:
    assert session["resumed"] is True
    missed = session["replayed"]
    assert [(await _frame(ws))["n"] for _ in range(missed)] == list(range(first, first + missed))
    room.note("live")
    assert await _frame(ws) == {"type": "note", "n": first + missed, "text": "live"}


async def test_a_client_that_resumes_gets_exactly_the_broadcasts_it_missed_in_order() -> None:
    """A client back after 50 broadcasts gets those 50 in order, then live ones."""
    async with _serve(NoteRoom, trio_rooms.MemoryStorage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        token, seen = await _connect_and_leave(port, room, 3)
        for _ in range(50):
            room.note()
        async with _resumed(port, token, seen) as (ws, session):
            assert session["replayed"] == 50
            await _expect_replay_then_live(ws, session, room, 3)
        assert room.replayed == [50]


async def test_broadcasts_a_client_was_left_out_of_are_neither_counted_nor_replayed() -> None:
    """Its count skips what it was excluded from: the resume replays exactly what it missed."""
    async with _serve(NoteRoom, trio_rooms.MemoryStorage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        async with open_client(port, "/rooms/r/websocket?resume=&seen=0") as (ws, _):
            session = (await _frame(ws))["$session"]
            room.broadcast(Note(n=-1, text="not for you"), exclude=(session["id"],))
            room.note()
            assert (await _frame(ws))["n"] == 0
        with trio.fail_after(10):
            await room.wait_closes(1)
        room.broadcast(Note(n=-2, text="nor this"), exclude=(session["id"],))
        room.note()
        async with _resumed(port, session["token"], 1) as (ws, resumed):
            assert resumed["replayed"] == 1
            await _expect_replay_then_live(ws, resumed, room, 1)


class _CountingLoads(DelegatingStorage):
    """Counts reads of a room's whole log; holds each answer until `release` is set."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.loads = 0
        self.reading = trio.Event()
        self.release: trio.Event | None = None

    async def load_frames(self, room: str, *, after: int = 0) -> Sequence[LoggedFrame]:
        self.loads += 1
        frames = await super().load_frames(room, after=after)
        self.reading.set()
        if self.release is not None:
            await self.release.wait()  # what is written meanwhile is not in ``frames``
        return frames


async def test_a_reconnect_wave_reads_the_log_from_storage_once() -> None:
    """Three clients back at once each get exactly what they missed; the log is read once."""
    storage = _CountingLoads(trio_rooms.MemoryStorage())
    async with _serve(NoteRoom, storage) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        left = [await _connect_and_leave(port, room, 2) for _ in range(3)]
        for _ in range(20):
            room.note()
        replayed: list[int] = []
        for token, seen in left:
            async with _resumed(port, token, seen) as (ws, session):
                replayed.append(session["replayed"])
                first = room.notes - session["replayed"]
                await _expect_replay_then_live(ws, session, room, first)
        # Each missed the 20 notes and the live notes of the clients before it.
        assert replayed == [20 + 2 * 2, 20 + 2 + 1, 20 + 2]
        assert storage.loads == 1


async def test_a_broadcast_made_while_the_log_is_first_read_is_replayed_or_sent_once() -> None:
    """A room task broadcasting during the first read of the log: the resumer gets it once."""
    storage = _CountingLoads(trio_rooms.MemoryStorage())
    async with _serve(NoteRoom, storage) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        token, seen = await _connect_and_leave(port, room, 1)
        room.note()
        storage.release = trio.Event()
        async with trio.open_nursery() as nursery:

            async def meanwhile() -> None:
                await storage.reading.wait()
                room.note("during the read")  # outside any event, as a room task can
                await trio.testing.wait_all_tasks_blocked()  # and committed meanwhile
                assert storage.release is not None
                storage.release.set()

            nursery.start_soon(meanwhile)
            async with _resumed(port, token, seen) as (ws, session):
                assert session["replayed"] == 2
                await _expect_replay_then_live(ws, session, room, 1)


async def test_a_client_that_missed_frames_in_flight_gets_them_again() -> None:
    """A client that says it saw fewer frames than were sent gets the rest, none twice."""
    async with _serve(NoteRoom, trio_rooms.MemoryStorage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        token, _ = await _connect_and_leave(port, room, 5)
        room.note()
        async with _resumed(port, token, 2) as (ws, session):
            assert session["replayed"] == 4  # notes 2, 3, 4 (read but lost) and 5
            await _expect_replay_then_live(ws, session, room, 2)


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncGenerator[Storage]:
    yield SqliteStorage(tmp_path / "rooms.db")


@asynccontextmanager
async def _redis(redis_server: RedisServer) -> AsyncGenerator[Storage]:
    from trio_rooms.storage.redis import RedisStorage

    yield RedisStorage(redis_server.url)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_missed_broadcasts_are_replayed_after_a_server_restart(
    backend: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Broadcasts logged before a restart are replayed by the new server, then live ones."""

    def storage() -> Storage:
        if backend == "sqlite":
            return SqliteStorage(tmp_path / "rooms.db")
        from trio_rooms.storage.redis import RedisStorage

        return RedisStorage(redis_server.url)

    async with _serve(NoteRoom, storage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        token, seen = await _connect_and_leave(port, room, 3)
        for _ in range(50):
            room.note()
        notes = room.notes
    async with _serve(NoteRoom, storage()) as (rooms, port):
        room = await rooms.get("r")
        room.notes = notes
        async with _resumed(port, token, seen) as (ws, session):
            assert session["replayed"] == 50
            await _expect_replay_then_live(ws, session, room, 3)


async def test_past_the_logs_bounds_the_client_gets_a_resync_and_the_hooks_snapshot() -> None:
    """When the log no longer reaches back, $resync and on_resync's snapshot come first."""
    async with _serve(ShortLogRoom, trio_rooms.MemoryStorage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        token, seen = await _connect_and_leave(port, room, 3)
        for _ in range(50):
            room.note()
        async with _resumed(port, token, seen) as (ws, session):
            assert (session["resumed"], session["replayed"]) == (True, 0)
            resync = await _frame(ws)
            assert list(resync) == ["$resync"]
            assert "no longer reaches back" in resync["$resync"]["reason"]
            assert await _frame(ws) == {"type": "snapshot", "notes": 53}
            room.note("live")
            assert (await _frame(ws))["n"] == 53
        assert (room.resyncs, room.replayed) == (1, [0])


async def test_a_count_that_is_not_a_number_gets_a_resync_not_a_failure() -> None:
    """A malformed seen= resumes the session and says why nothing was replayed."""
    async with _serve(NoteRoom, trio_rooms.MemoryStorage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        token, _ = await _connect_and_leave(port, room, 1)
        async with open_client(port, f"/rooms/r/websocket?resume={token}&seen=-1") as (ws, _):
            assert (await _frame(ws))["$session"]["resumed"] is True
            reason = (await _frame(ws))["$resync"]["reason"]
            assert reason == "seen must be a count of frames, got '-1'"


async def test_five_hundred_replayed_frames_reach_a_prompt_reader_within_the_default_limits() -> (
    None
):
    """500 missed frames (2 MB, past outbound_max_bytes) are paced out, with no 1008."""
    async with _serve(LongLogRoom, trio_rooms.MemoryStorage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        token, seen = await _connect_and_leave(port, room, 1)
        for _ in range(500):
            room.note("x" * 4096)
        async with _resumed(port, token, seen) as (ws, session):
            assert session["replayed"] == 500
            await _expect_replay_then_live(ws, session, room, 1)
        assert rooms.statistics().closes.get(1008, 0) == 0


async def test_a_room_that_opts_out_replays_nothing_and_says_so() -> None:
    """With replay off, $session carries no replayed count and the next frame is live."""
    async with _serve(NoReplayRoom, trio_rooms.MemoryStorage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        async with open_client(port, "/rooms/r/websocket?resume=&seen=0") as (ws, _):
            token = (await _frame(ws))["$session"]["token"]
        await room.wait_closes(1)
        room.note()
        async with _resumed(port, token, 0) as (ws, session):
            assert session == {"id": session["id"], "token": session["token"], "resumed": True}
            room.note("live")
            assert await _frame(ws) == {"type": "note", "n": 1, "text": "live"}


async def test_the_python_client_counts_resumes_and_reports_the_replay() -> None:
    """RoomClient resumes with its count, gets what it missed and reports Reconnected(replayed)."""
    async with _serve(NoteRoom, trio_rooms.MemoryStorage()) as (rooms, port):
        room: NoteRoom = await rooms.get("r")
        url = f"ws://127.0.0.1:{port}/rooms/r/websocket"
        async with open_room_client(url, (Note, Snapshot), (Leave,), reconnect=FAST) as client:
            room.note()
            assert await client.receive() == Note(n=0)
            client.send(Leave(code=1012, then=4))  # 4 notes once it has left
            event = await client.events.receive()
            assert isinstance(event, Reconnected)
            assert (event.resumed, event.replayed) == (True, 4)
            assert [await client.receive() for _ in range(4)] == [Note(n=n) for n in range(1, 5)]
            room.note("live")
            assert await client.receive() == Note(n=5, text="live")


async def test_the_python_client_reports_a_resync_and_gets_the_snapshot() -> None:
    """Past the log's bounds RoomClient reports Resynced after Reconnected, then the snapshot."""
    async with _serve(ShortLogRoom, trio_rooms.MemoryStorage()) as (_, port):
        url = f"ws://127.0.0.1:{port}/rooms/r/websocket"
        async with open_room_client(url, (Note, Snapshot), (Leave,), reconnect=FAST) as client:
            client.send(Leave(code=1012, then=20))
            event = await client.events.receive()
            assert isinstance(event, Reconnected)
            assert (event.resumed, event.replayed) == (True, 0)
            assert await client.receive() == Snapshot(notes=20)
            resynced = await client.events.receive()
            assert isinstance(resynced, Resynced)
            assert "no longer reaches back" in resynced.reason
