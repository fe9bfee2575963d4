"""A room's events never interleave; its storage is cached, commits per event, and gates output."""

from __future__ import annotations

import socket
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import RoomClient, Rooms, RoomsConfig
from trio_rooms._core.gate import Gate
from trio_rooms._core.room_storage import WRITES_PER_YIELD
from trio_rooms.storage import MemoryStorage, Storage

from .flaky_storage import FlakyStorage
from .gated_storage import BACKENDS, make_backend
from .gates_app import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    Counted,
    CounterRoom,
    Increment,
    IncrementOutside,
    Read,
)
from .recording_storage import RecordingStorage
from .sockets import CLOSE, RawClient, open_raw
from .steps import TaskSteps

CONFIG = RoomsConfig(rate_limit=None)
OUTSIDE = '{"type":"incrementOutside"}'
CLIENTS = 4
EACH = 100

Client = RoomClient[Counted, Increment | IncrementOutside | Read]


@asynccontextmanager
async def serving(storage: Storage) -> AsyncGenerator[tuple[Rooms[CounterRoom], int]]:
    async with (
        trio_rooms.open_rooms(CounterRoom, config=CONFIG, storage=storage) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def client(port: int, room: str = "counter") -> AsyncGenerator[Client]:
    url = f"ws://127.0.0.1:{port}/rooms/{room}/websocket"
    async with trio_rooms.open_room_client(url, SERVER_MESSAGES, CLIENT_MESSAGES) as opened:
        yield opened


@asynccontextmanager
async def recorded(name: str) -> AsyncGenerator[tuple[CounterRoom, RecordingStorage]]:
    """The room ``name`` on a storage that records its commits, its start's writes flushed."""
    storage = RecordingStorage(MemoryStorage())
    async with trio_rooms.open_rooms(CounterRoom, storage=storage) as rooms:
        room = await rooms.get(name)
        await room.storage.flush()
        yield room, storage


def _values(storage: RecordingStorage, since: int) -> list[dict[str, bytes | None]]:
    """The values of each commit from the ``since``-th on."""
    return [dict(commit.values) for commit in storage.commits[since:]]


async def _increment(port: int, messages: list[Increment | IncrementOutside]) -> Counted:
    """Send every message at once, then take the replies; the last one."""
    async with client(port) as opened:
        for message in messages:
            opened.send(message)
        replies = [await opened.receive() for _ in messages]
        return max(replies, key=lambda reply: reply.n)


async def _read(port: int) -> Counted:
    async with client(port) as opened:
        opened.send(Read())
        return await opened.receive()


def _readable(raw: RawClient) -> bool:
    """Whether the client's socket has bytes to read, without reading them."""
    with socket.fromfd(raw.stream.socket.fileno(), socket.AF_INET, socket.SOCK_STREAM) as dup:
        try:
            return bool(dup.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK))
        except BlockingIOError:
            return False


async def _frames_until_close(raw: RawClient) -> list[tuple[int, int | None]]:
    """The opcodes of the frames up to the server's close frame, with its code."""
    frames: list[tuple[int, int | None]] = []
    while (frame := await raw.receive_frame()) is not None:
        frames.append((frame.opcode, frame.close_code if frame.opcode == CLOSE else None))
        if frame.opcode == CLOSE:
            break
    return frames


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return make_backend(request.param, request, tmp_path)


async def test_increments_through_awaits_are_never_lost(storage: Storage) -> None:
    """4 clients x 100 read-await-write increments of storage, room and session data: 400."""
    async with serving(storage) as (_, port):
        mine: list[int] = []
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:

                async def one() -> None:
                    mine.append((await _increment(port, [Increment()] * EACH)).mine)

                for _ in range(CLIENTS):
                    nursery.start_soon(one)
            assert mine == [EACH] * CLIENTS  # each session's own data, updated in place
            assert await _read(port) == Counted(n=CLIENTS * EACH, seen=CLIENTS * EACH, mine=0)


async def test_a_task_of_the_room_in_exclusive_is_never_interleaved(storage: Storage) -> None:
    """Handlers and room tasks awaiting trio.sleep(0) in exclusive() interleave: still 400."""
    async with serving(storage) as (_, port):
        messages = [Increment(), IncrementOutside()] * (EACH // 2)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(CLIENTS):
                    nursery.start_soon(_increment, port, messages)
            total = CLIENTS * EACH
            assert await _read(port) == Counted(n=total, seen=total, mine=0)


async def test_a_frame_after_a_write_waits_until_it_is_durable() -> None:
    """A frame sent after a write is not on the socket while the write's commit is held."""
    storage = RecordingStorage(MemoryStorage())
    async with serving(storage) as (_, port), open_raw(port, "/rooms/counter/websocket") as raw:
        with trio.fail_after(10):
            await raw.send_text('{"type": "read"}')
            assert orjson.loads(await raw.receive_text())["n"] == 0
            release = storage.hold_next_commit()
            try:
                await raw.send_text(OUTSIDE)  # puts, then sends without awaiting the commit
                await storage.arrived.wait()  # the task has sent its reply by now
                await trio.testing.wait_all_tasks_blocked()
                assert not _readable(raw)  # loopback: a frame written would be here by now
            finally:
                release.set()
            assert orjson.loads(await raw.receive_text())["n"] == 1


async def test_a_failed_commit_sends_nothing_and_restarts_the_room() -> None:
    """Commit fails: no session sees the write, all get 1011, the new room reads the old state."""
    storage = FlakyStorage()
    async with serving(storage) as (rooms, port):
        with trio.fail_after(10):
            assert (await _increment(port, [Increment()])).n == 1
            first = await rooms.get("counter")
            async with (
                open_raw(port, "/rooms/counter/websocket") as writer,
                open_raw(port, "/rooms/counter/websocket") as other,
            ):
                await writer.send_text('{"type": "read"}')
                assert orjson.loads(await writer.receive_text())["n"] == 1
                storage.fail = True
                await writer.send_text(OUTSIDE)  # its reply is held, then dropped
                for raw in (writer, other):
                    assert await _frames_until_close(raw) == [(CLOSE, 1011)]
            storage.fail = False
            assert await _read(port) == Counted(n=1, seen=0, mine=0)  # a new room, from storage
            assert await rooms.get("counter") is not first


async def test_the_writes_of_one_event_are_one_commit() -> None:
    """Three puts in one exclusive block commit together; a read after the first is cached."""
    async with recorded("r") as (room, storage):
        before = len(storage.commits)
        async with room.exclusive():
            for key in ("a", "b", "c"):
                await room.storage.put(key, key.upper())
                await trio.testing.wait_all_tasks_blocked()  # the committer ran meanwhile
        await room.storage.flush()
        assert _values(storage, before) == [{"a": b'"A"', "b": b'"B"', "c": b'"C"'}]
        assert await room.storage.get("x", int) is None
        assert await room.storage.get("x", int) is None
        assert await room.storage.get("a", str) == "A"
        assert storage.gets == 1  # x once; a was written here


async def test_puts_are_cancel_points_and_only_every_64th_is_a_schedule_point() -> None:
    """A few writes keep the scheduler on the event; a long loop of them still yields; a
    cancelled put writes nothing."""
    async with trio_rooms.open_rooms(CounterRoom, storage=MemoryStorage()) as rooms:
        room = await rooms.get("p")
        await room.storage.put("warm", 0)  # the first write of the room's count
        steps = TaskSteps(task=trio.lowlevel.current_task())
        trio.lowlevel.add_instrument(steps)
        try:
            await room.storage.put("a", 1)
            await room.storage.delete("a")
            assert steps.steps == 0  # never left this task's turn
            for n in range(WRITES_PER_YIELD):
                await room.storage.put("n", n)
            assert steps.steps == 1  # once in 64 writes
        finally:
            trio.lowlevel.remove_instrument(steps)
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await room.storage.put("b", 2)
        assert await room.storage.get("b", int) is None


async def test_a_transaction_lands_whole_or_not_at_all() -> None:
    """A transaction that raises writes nothing; one that ends commits every write at once."""
    storage = RecordingStorage(MemoryStorage())
    async with trio_rooms.open_rooms(CounterRoom, storage=storage) as rooms:
        room = await rooms.get("t")

        async def overdraw() -> None:
            async with room.storage.transaction():
                await room.storage.put("from", 0)
                assert await room.storage.get("from", int) == 0  # sees its own writes
                raise ValueError("no funds")

        with pytest.raises(ValueError, match="no funds"):
            await overdraw()
        assert await room.storage.get("from", int) is None
        async with room.storage.transaction():
            await room.storage.put("from", 90)
            await room.storage.put("to", 10)
        await room.storage.flush()
        assert dict(storage.commits[-1].values) == {"from": b"90", "to": b"10"}
        assert await storage.get("t", "to") == b"10"


async def test_a_room_caches_at_most_max_cached_values_the_least_recent_going_first() -> None:
    """With room for two values, reading a, b, c then b and a reads a from storage again."""
    storage = RecordingStorage(MemoryStorage())
    config = RoomsConfig(max_cached_values=2)
    async with trio_rooms.open_rooms(CounterRoom, config=config, storage=storage) as rooms:
        room = await rooms.get("r")
        for key in ("a", "b", "c", "b"):
            assert await room.storage.get(key, int) is None
        assert storage.gets == 3
        assert await room.storage.get("a", int) is None
        assert storage.gets == 4


async def test_an_event_keeping_others_waiting_over_a_second_is_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Holding the room 2 s while another event waits logs one warning; alone, nothing."""
    async with trio_rooms.open_rooms(CounterRoom, storage=MemoryStorage()) as rooms:
        room = await rooms.get("slow")
        async with room.exclusive():
            await trio.sleep(2)  # sync-ok: mock clock: the time held is what is tested
        assert not caplog.records

        async def wait_for_the_room() -> None:
            async with room.exclusive():
                pass

        async with trio.open_nursery() as nursery, room.exclusive():
            nursery.start_soon(wait_for_the_room)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(2)  # sync-ok: mock clock: the time held is what is tested
        (record,) = caplog.records
        assert record.levelname == "WARNING"
        assert "room 'slow': an event kept 1 more waiting for 2.0 s" in record.getMessage()


async def test_acquire_nowait_takes_a_free_gate_reenters_and_never_jumps_a_waiter() -> None:
    released: list[int] = []
    gate = Gate(lambda: released.append(1))
    gate.acquire_nowait()  # free: taken
    gate.acquire_nowait()  # held by this task: entered again
    ran: list[str] = []

    async def other() -> None:
        with pytest.raises(trio.WouldBlock):
            gate.acquire_nowait()
        await gate.acquire()
        ran.append("other")
        gate.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.testing.wait_all_tasks_blocked()
        gate.dirty = True  # something for `on_release` to do
        gate.release()
        assert released == []  # still held once
        gate.release()
        assert released == [1]
        gate.dirty = True  # and for the waiter's release
        # Handed to the waiter before it runs: it is not free for this task to take.
        with pytest.raises(trio.WouldBlock):
            gate.acquire_nowait()
    assert ran == ["other"]
    assert released == [1, 1]
    assert not gate.held


async def test_on_release_runs_only_after_dirty_once_per_release_for_good() -> None:
    """An event that wrote nothing is let go without a call; ``dirty`` is cleared by it."""
    released: list[int] = []
    gate = Gate(lambda: released.append(1))
    await gate.acquire()
    gate.release()
    assert released == []  # nothing to seal
    await gate.acquire()
    await gate.acquire()
    gate.dirty = True
    gate.release()
    assert released == []  # still held
    gate.release()
    assert released == [1]
    assert not gate.dirty
    await gate.acquire()
    gate.release()
    assert released == [1]  # not again for the next, clean, event


async def test_a_write_after_a_flush_in_one_event_is_sealed_at_its_end() -> None:
    """A flush seals what the event wrote so far; what it writes after is sealed when it ends."""
    async with recorded("f") as (room, storage):
        before = len(storage.commits)
        async with room.exclusive():
            async with room.exclusive():
                pass  # a nested event that writes nothing seals nothing
            await room.storage.put("a", 1)
            await room.storage.flush()
            await room.storage.put("b", 2)
            await trio.testing.wait_all_tasks_blocked()
            assert len(storage.commits) == before + 1  # b waits for the event's end
        await trio.testing.wait_all_tasks_blocked()
        assert _values(storage, before) == [{"a": b"1"}, {"b": b"2"}]
        async with room.exclusive():
            assert await room.storage.get("b", int) == 2  # reads only: nothing to commit
        await trio.testing.wait_all_tasks_blocked()
        assert len(storage.commits) == before + 2
