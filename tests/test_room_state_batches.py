"""RoomState's batches: events sealed while a commit is in flight join the next one whole.

Each event's writes are sealed when it lets the gate go; the first event after a commit
becomes the sealed batch, the events after it are moved into it. Whatever way a batch
took, the next commit holds every write of the events sealed meanwhile, the last write
of a key winning and the log's frames in order, and reads see the newest write before.
"""

from __future__ import annotations

import trio

from trio_rooms._core.gate import Gate
from trio_rooms._core.room_state import RoomState
from trio_rooms._errors import StorageError
from trio_rooms.storage import LoggedFrame, MemoryStorage

from .recording_storage import RecordingStorage


def _failed(error: StorageError) -> None:
    raise AssertionError(f"no commit fails here: {error!r}")


def _state(storage: RecordingStorage) -> RoomState:
    state: RoomState
    gate = Gate(lambda: state.seal(), "room")
    state = RoomState(storage, "room", gate, cache=True, max_cached=10)
    return state


def _event(state: RoomState, *, key: str, value: bytes, frame: int) -> None:
    """One event: the gate taken, a value written and a frame logged, the gate let go."""
    state.gate.acquire_nowait()
    state.put(key, value)
    state.log_frame(LoggedFrame(frame, b"frame %d" % frame))
    state.gate.release()


async def test_events_sealed_during_a_commit_share_the_next_one_in_order() -> None:
    storage = RecordingStorage(MemoryStorage())
    await storage.open()
    state = _state(storage)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(state.run_committer, _failed)
        release = storage.hold_next_commit()
        _event(state, key="a", value=b"1", frame=1)
        await storage.arrived.wait()  # the first commit is in flight, held
        _event(state, key="a", value=b"2", frame=2)  # swapped in: nothing sealed yet
        _event(state, key="b", value=b"3", frame=3)  # moved into the sealed batch
        state.gate.acquire_nowait()
        state.log_frame(LoggedFrame(4, b"frame 4"))  # an event that only logs
        state.gate.release()
        _event(state, key="a", value=b"5", frame=5)
        assert await state.get("a") == b"5"
        assert [frame.seq for frame in state.unsaved_frames()] == [1, 2, 3, 4, 5]
        release.set()
        await state.flush()
        nursery.cancel_scope.cancel()
    first, second = storage.commits
    assert first.values == {"a": b"1"}
    assert [frame.seq for frame in first.frames] == [1]
    assert second.values == {"a": b"5", "b": b"3"}
    assert [frame.seq for frame in second.frames] == [2, 3, 4, 5]
    assert state.durability.seq == 5  # one number per event
    assert state.unsaved_frames() == []
    assert await storage.get("room", "a") == b"5"
    await storage.aclose()
