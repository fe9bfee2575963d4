"""Durable alarms: when they fire, how they retry, and how they outlive rooms and servers.

Most tests run under ``trio.testing.MockClock`` with a wall clock that follows it
(`testing.wall_clock`), so every time they assert is exact; the restart test runs on
SQLite files in real time, and the gate tests without a clock of their own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import (
    ConnectRequest,
    Message,
    Room,
    Rooms,
    RoomsConfig,
    Session,
    StorageError,
    testing,
)
from trio_rooms.storage import MemoryStorage, SqliteStorage, Storage, StoredAlarm

from .delegating_storage import DelegatingStorage
from .flaky_storage import FlakyStorage

#: The wall-clock time at trio time 0.
EPOCH = 1_000_000.0
#: Longer than any test waits for an alarm, in trio time (virtual under MockClock).
VIRTUAL_TIMEOUT = 10_000


def _follow_trio() -> float:
    return EPOCH + trio.current_time()


@attrs.frozen
class Increment(Message):
    pass


@attrs.frozen
class Count(Message):
    n: int


class CounterSession(Session[None, Count, Increment, "AlarmRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Increment) -> None:
        self.room.journal.log("message")
        self.send(Count(await self.room.increment()))


@attrs.define(eq=False)
class Fired:
    room: str
    name: str
    attempt: int
    #: trio time at which the handler started.
    at: float


Action = Callable[["AlarmRoom", "Fired"], Awaitable[None]]


@attrs.define(eq=False)
class Journal:
    """What the rooms of a test did, shared by every room object (evicted ones too)."""

    events: list[str] = attrs.field(factory=list[str])
    fired: list[Fired] = attrs.field(factory=list[Fired])
    #: What the handler of an alarm does, by alarm name (default: nothing).
    actions: dict[str, Action] = attrs.field(factory=dict[str, Action])
    changed: trio.Event = attrs.field(factory=trio.Event)
    #: Rooms that fail in on_start before one starts again.
    failing_starts: int = 0

    def log(self, event: str) -> None:
        self.events.append(event)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_fired(self, count: int) -> list[Fired]:
        """Wait until ``count`` handlers have started; return them in order.

        Bounded (in virtual time under MockClock), so a test whose alarms never fire
        fails instead of jumping the clock forever.
        """
        with trio.fail_after(VIRTUAL_TIMEOUT):
            while len(self.fired) < count:
                await self.changed.wait()
        return self.fired

    async def wait_event(self, event: str) -> None:
        """Wait until ``event`` is logged, bounded like `wait_fired`."""
        with trio.fail_after(VIRTUAL_TIMEOUT):
            while event not in self.events:
                await self.changed.wait()

    def names(self) -> list[str]:
        return [fired.name for fired in self.fired]


class AlarmRoom(Room[CounterSession]):
    def __init__(self, name: str, journal: Journal) -> None:
        super().__init__(name)
        self.journal = journal

    async def on_start(self) -> None:
        journal = self.journal
        if journal.failing_starts:
            journal.failing_starts -= 1
            journal.log(f"failed start {self.name}")
            raise RuntimeError("cannot start")
        journal.log(f"start {self.name}")

    async def on_stop(self) -> None:
        self.journal.log(f"stop {self.name}")

    async def on_alarm(self, name: str, attempt: int) -> None:
        fired = Fired(self.name, name, attempt, trio.current_time())
        self.journal.fired.append(fired)
        self.journal.log(f"alarm {name}")
        action = self.journal.actions.get(name)
        if action is not None:
            await action(self, fired)

    async def increment(self) -> int:
        n = await self.storage.get("n", int) or 0
        await self.storage.put("n", n + 1)
        return n + 1


@asynccontextmanager
async def open_alarm_rooms(
    journal: Journal, *, storage: Storage | None = None, config: RoomsConfig | None = None
) -> AsyncGenerator[Rooms[AlarmRoom]]:
    async with trio_rooms.open_rooms(
        lambda name: AlarmRoom(name, journal), storage=storage, config=config
    ) as rooms:
        yield rooms


@contextmanager
def following_trio(offset: float = 0.0) -> Generator[None]:
    """Wall-clock time is EPOCH + offset + trio time in the rooms opened inside."""
    with testing.wall_clock(lambda: _follow_trio() + offset):
        yield


async def _stored(storage: Storage) -> list[StoredAlarm]:
    return list(await storage.next_alarms(100))


# ------------------------------------------------------------------ firing


async def test_many_alarms_of_a_room_fire_in_time_order_and_never_early(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Alarms set by delay, UNIX time and datetime fire once each, in time order, at their time."""
    journal = Journal()
    with following_trio():
        async with open_alarm_rooms(journal) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("c", delay=30)
            await room.set_alarm("a", at=EPOCH + 10)
            await room.set_alarm("b", at=datetime.fromtimestamp(EPOCH + 20, UTC))
            assert room.alarms() == {
                name: datetime.fromtimestamp(EPOCH + due, UTC)
                for name, due in (("a", 10), ("b", 20), ("c", 30))
            }
            fired = await journal.wait_fired(3)
            assert [(f.name, f.at, f.attempt) for f in fired] == [
                ("a", 10, 0),
                ("b", 20, 0),
                ("c", 30, 0),
            ]
            await testing.fire_due_alarms(rooms)  # the last one's commit is in
            assert room.alarms() == {}
            await trio.sleep(100)  # autojump_clock: virtual time  # sync-ok
            assert len(journal.fired) == 3


async def test_an_alarm_never_fires_before_its_time_even_with_the_wall_clock_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The handler of an alarm due at wall time T runs only once the wall clock reads T."""
    journal = Journal()
    wall = [EPOCH]
    with testing.wall_clock(lambda: wall[0]):
        async with open_alarm_rooms(journal) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("later", delay=60)
            await trio.sleep(120)  # trio time moves; the wall clock does not  # sync-ok
            await testing.fire_due_alarms(rooms)
            assert journal.fired == []
            wall[0] = EPOCH + 59.999
            await testing.fire_due_alarms(rooms)
            assert journal.fired == []
            wall[0] = EPOCH + 60
            await testing.fire_due_alarms(rooms)
            assert journal.names() == ["later"]


async def test_a_cancelled_alarm_does_not_fire(autojump_clock: trio.testing.MockClock) -> None:
    """cancel_alarm removes the alarm from the room's view and from the storage; others fire."""
    journal = Journal()
    storage = MemoryStorage()
    with following_trio():
        async with open_alarm_rooms(journal, storage=storage) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("a", delay=10)
            await room.set_alarm("b", delay=20)
            await room.cancel_alarm("a")
            await room.cancel_alarm("never-set")  # nothing happens
            assert list(room.alarms()) == ["b"]
            await room.storage.flush()
            assert [alarm.name for alarm in await _stored(storage)] == ["b"]
            fired = await journal.wait_fired(1)
            assert [(f.name, f.at) for f in fired] == [("b", 20)]
            await trio.sleep(100)  # sync-ok
            assert journal.names() == ["b"]


async def test_setting_an_alarm_again_replaces_it(autojump_clock: trio.testing.MockClock) -> None:
    """A name set twice fires once, at the time it was set to last."""
    journal = Journal()
    with following_trio():
        async with open_alarm_rooms(journal) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("turn", delay=10)
            await room.set_alarm("turn", delay=50)
            assert room.alarms() == {"turn": datetime.fromtimestamp(EPOCH + 50, UTC)}
            fired = await journal.wait_fired(1)
            assert [(f.name, f.at) for f in fired] == [("turn", 50)]
            await trio.sleep(100)  # sync-ok
            assert len(journal.fired) == 1


async def test_an_alarm_set_again_by_its_own_handler_survives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A handler that sets its own alarm again (a repeating tick) is not undone by the firing."""
    journal = Journal()
    storage = MemoryStorage()

    async def again(room: AlarmRoom, fired: Fired) -> None:
        if len(journal.fired) < 3:
            await room.set_alarm("tick", delay=10)

    journal.actions["tick"] = again
    with following_trio():
        async with open_alarm_rooms(journal, storage=storage) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("tick", delay=10)
            fired = await journal.wait_fired(3)
            assert [f.at for f in fired] == [10, 20, 30]
            await testing.fire_due_alarms(rooms)
            await trio.sleep(100)  # sync-ok
            assert len(journal.fired) == 3
            assert await _stored(storage) == []


async def test_alarms_of_many_rooms_fire_concurrently_up_to_the_limit() -> None:
    """At most max_concurrent_alarms handlers run at once; the rest wait for a free slot."""
    journal = Journal()
    release = trio.Event()
    running = 0
    most = 0
    two_running = trio.Event()

    async def block(room: AlarmRoom, fired: Fired) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 2:
            two_running.set()
        async with room.unlocked():
            await release.wait()
        running -= 1

    journal.actions["go"] = block
    config = RoomsConfig(max_concurrent_alarms=2)
    with testing.wall_clock(lambda: EPOCH):
        async with open_alarm_rooms(journal, config=config) as rooms:
            for n in range(5):
                room = await rooms.get(f"room-{n}")
                await room.set_alarm("go", delay=0)
            with trio.fail_after(10):
                await two_running.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert (running, len(journal.fired)) == (2, 2)
            release.set()
            with trio.fail_after(10):
                await journal.wait_fired(5)
                await testing.fire_due_alarms(rooms)
            assert most == 2
            assert sorted(f.room for f in journal.fired) == [f"room-{n}" for n in range(5)]


# ------------------------------------------------------------------ retries


async def test_a_raising_handler_is_retried_with_backoff_and_its_attempt_number(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing on_alarm runs again after 1 s, then 2 s, with attempt 1, 2, until it succeeds."""
    journal = Journal()
    storage = MemoryStorage()

    async def fail_twice(room: AlarmRoom, fired: Fired) -> None:
        if fired.attempt < 2:
            raise RuntimeError(f"boom {fired.attempt}")

    journal.actions["flaky"] = fail_twice
    config = RoomsConfig(alarm_retry_delay=1, alarm_retry_max_delay=60)
    with following_trio():
        async with open_alarm_rooms(journal, storage=storage, config=config) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("flaky", delay=10)
            fired = await journal.wait_fired(3)
            assert [(f.at, f.attempt) for f in fired] == [(10, 0), (11, 1), (13, 2)]
            await testing.fire_due_alarms(rooms)
            assert await _stored(storage) == []
            await trio.sleep(100)  # sync-ok
            assert len(journal.fired) == 3
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "on_alarm" in r.message]
    assert [r.exc_info[1].args for r in failures if r.exc_info and r.exc_info[1]] == [
        ("boom 0",),
        ("boom 1",),
    ]


async def test_an_alarm_that_keeps_failing_is_dropped_after_the_last_attempt(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """After alarm_max_attempts failed runs, the delay doubling up to its cap, it is deleted."""
    journal = Journal()
    storage = MemoryStorage()

    async def always_fail(room: AlarmRoom, fired: Fired) -> None:
        raise RuntimeError("never works")

    journal.actions["doomed"] = always_fail
    config = RoomsConfig(alarm_retry_delay=2, alarm_retry_max_delay=5, alarm_max_attempts=4)
    with following_trio():
        async with open_alarm_rooms(journal, storage=storage, config=config) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("doomed", delay=0)
            fired = await journal.wait_fired(4)
            assert [(f.at, f.attempt) for f in fired] == [(0, 0), (2, 1), (6, 2), (11, 3)]
            await testing.fire_due_alarms(rooms)
            assert await _stored(storage) == []
            assert room.alarms() == {}
            await trio.sleep(1000)  # sync-ok
            assert len(journal.fired) == 4
    assert any("dropped after 4 failed attempts" in r.message for r in caplog.records)


# ------------------------------------------------------- eviction and restarts


async def test_an_alarm_brings_back_an_evicted_room_on_start_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The alarm of an evicted room makes the room again, runs on_start, then on_alarm."""
    journal = Journal()
    with following_trio():
        async with open_alarm_rooms(journal) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("wake", delay=60)
            await testing.evict(rooms, "lobby")
            assert rooms.statistics().rooms == 0
            await journal.wait_fired(1)
            assert journal.events == ["start lobby", "stop lobby", "start lobby", "alarm wake"]
            assert journal.fired[0].at == 60
            assert (await rooms.get("lobby")) is not room


async def test_an_alarm_whose_room_fails_to_start_counts_it_as_a_failed_attempt(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A room whose on_start raises is started again with the alarm's backoff, attempt counted."""
    journal = Journal()
    config = RoomsConfig(alarm_retry_delay=1)
    with following_trio():
        async with open_alarm_rooms(journal, config=config) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("wake", delay=10)
            await testing.evict(rooms, "lobby")
            journal.failing_starts = 2
            fired = await journal.wait_fired(1)
            assert (fired[0].at, fired[0].attempt) == (13, 2)  # tried at 10, 11, then 13
            assert journal.events[2:] == [
                "failed start lobby",
                "failed start lobby",
                "start lobby",
                "alarm wake",
            ]
    assert sum("failed to start for its alarm" in r.message for r in caplog.records) == 2


class _FailingReads(DelegatingStorage):
    """A MemoryStorage whose next look at every room's alarms fails, once armed."""

    def __init__(self) -> None:
        super().__init__(MemoryStorage())
        self.armed = False

    async def next_alarms(self, limit: int) -> Sequence[StoredAlarm]:
        if self.armed:
            self.armed = False
            raise StorageError("the alarms are unreadable")
        return await super().next_alarms(limit)


async def test_the_scheduler_outlives_a_storage_failure(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed read of the alarms is logged and tried again; the alarm still fires on time."""
    journal = Journal()
    storage = _FailingReads()
    with following_trio():
        async with open_alarm_rooms(journal, storage=storage) as rooms:
            room = await rooms.get("lobby")
            storage.armed = True
            await room.set_alarm("wake", delay=5)
            fired = await journal.wait_fired(1)
            assert fired[0].at == 5
            assert not storage.armed
    assert any("could not read the alarms" in r.message for r in caplog.records)


async def test_a_room_is_not_evicted_while_its_alarm_fires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A room whose alarm handler runs past room_idle_timeout stops only after it, when idle."""
    journal = Journal()

    async def slow(room: AlarmRoom, fired: Fired) -> None:
        await trio.sleep(20)  # sync-ok
        journal.log("done")

    journal.actions["slow"] = slow
    config = RoomsConfig(room_idle_timeout=5)
    with following_trio():
        async with open_alarm_rooms(journal, config=config) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("slow", delay=3)
            await journal.wait_event("stop lobby")
            assert journal.events == ["start lobby", "alarm slow", "done", "stop lobby"]
            assert trio.current_time() == 3 + 20 + 5


async def test_an_alarm_due_while_the_server_was_down_fires_after_restart(
    tmp_path: Path,
) -> None:
    """A new open_rooms on the same SQLite file fires an alarm that fell due while it was down."""
    path = tmp_path / "rooms.db"
    journal = Journal()
    with following_trio():
        async with open_alarm_rooms(journal, storage=SqliteStorage(path)) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("wake", delay=3600)
            await room.set_alarm("much-later", delay=7200)
    assert journal.fired == []
    # An hour and a bit later, on a new server over the same file.
    with following_trio(offset=3601):
        async with open_alarm_rooms(journal, storage=SqliteStorage(path)) as rooms:
            with trio.fail_after(10):
                await journal.wait_fired(1)
                await testing.fire_due_alarms(rooms)
            assert journal.events[-2:] == ["start lobby", "alarm wake"]
            room = await rooms.get("lobby")
            assert list(room.alarms()) == ["much-later"]
    storage = SqliteStorage(path)
    await storage.open()
    try:
        assert [alarm.name for alarm in await _stored(storage)] == ["much-later"]
    finally:
        await storage.aclose()


async def test_an_alarm_cancelled_mid_handler_by_shutdown_fires_again_after_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At least once: a handler cut off by shutdown leaves its alarm for the next server to fire."""
    journal = Journal()
    storage = MemoryStorage()
    started = trio.Event()

    async def hang(room: AlarmRoom, fired: Fired) -> None:
        if fired.attempt == 0 and len(journal.fired) == 1:
            started.set()
            await trio.sleep_forever()

    journal.actions["job"] = hang
    with following_trio():
        async with open_alarm_rooms(journal, storage=storage) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("job", delay=5)
            with trio.fail_after(VIRTUAL_TIMEOUT):
                await started.wait()
        assert [alarm.name for alarm in await _stored(storage)] == ["job"]
        async with open_alarm_rooms(journal, storage=storage) as rooms:
            fired = await journal.wait_fired(2)
            await testing.fire_due_alarms(rooms)
            assert [(f.name, f.attempt) for f in fired] == [("job", 0), ("job", 0)]
            assert await _stored(storage) == []


# ---------------------------------------------------- storage and the gate


async def test_an_alarm_set_by_a_handler_whose_commit_failed_never_fires(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The failed commit takes the alarm with it; the firing alarm is kept and fires once more."""
    journal = Journal()
    storage = FlakyStorage()

    async def set_then_fail(room: AlarmRoom, fired: Fired) -> None:
        if len(journal.fired) == 1:
            await room.set_alarm("lost", delay=10)
            storage.fail_commits = True  # this handler's commit fails
        else:
            storage.fail_commits = False  # the room started again from storage

    journal.actions["first"] = set_then_fail
    with following_trio():
        async with open_alarm_rooms(journal, storage=storage) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("first", delay=5)
            fired = await journal.wait_fired(2)
            assert journal.events[:2] == ["start lobby", "alarm first"]
            assert journal.events[2:] == ["start lobby", "alarm first"]  # no on_stop: broken
            await trio.sleep(100)  # well past the lost alarm's time  # sync-ok
            await testing.fire_due_alarms(rooms)
            assert [f.name for f in fired] == ["first", "first"]
            assert await _stored(storage) == []
            assert (await rooms.get("lobby")).alarms() == {}
    assert any("commit failed" in r.message for r in caplog.records)


async def test_alarms_of_a_rolled_back_transaction_are_not_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A transaction that raises drops its alarm writes; one that ends keeps them."""
    journal = Journal()
    with following_trio():
        async with open_alarm_rooms(journal) as rooms:
            room = await rooms.get("lobby")
            await room.set_alarm("kept", delay=10)
            with pytest.raises(RuntimeError, match="abort"):
                await _set_and_abort(room)
            assert list(room.alarms()) == ["kept"]
            async with room.storage.transaction():
                await room.set_alarm("committed", delay=20)
            assert list(room.alarms()) == ["kept", "committed"]
            fired = await journal.wait_fired(2)
            assert [(f.name, f.at) for f in fired] == [("kept", 10), ("committed", 20)]


async def _set_and_abort(room: AlarmRoom) -> None:
    """In a transaction, set one alarm and cancel another, check the view, then raise."""
    async with room.storage.transaction():
        await room.set_alarm("rolled-back", delay=5)
        await room.cancel_alarm("kept")
        assert list(room.alarms()) == ["rolled-back"]  # the transaction sees its own writes
        raise RuntimeError("abort")


class _HeldGets(DelegatingStorage):
    """A MemoryStorage whose next read of a room value waits until released."""

    def __init__(self) -> None:
        super().__init__(MemoryStorage())
        self.arrived = trio.Event()
        self.release = trio.Event()
        self.hold = True

    async def get(self, room: str, key: str) -> bytes | None:
        if self.hold:
            self.hold = False
            self.arrived.set()
            await self.release.wait()
        return await super().get(room, key)


async def test_an_alarm_runs_under_the_gate_a_message_waits_for_it() -> None:
    """A message arriving while on_alarm awaits storage is handled only after the alarm's event."""
    journal = Journal()
    storage = _HeldGets()

    async def increment(room: AlarmRoom, fired: Fired) -> None:
        await room.increment()
        journal.log("alarm done")

    journal.actions["count"] = increment
    with testing.wall_clock(lambda: EPOCH):
        async with open_alarm_rooms(journal, storage=storage) as rooms:
            room = await rooms.get("lobby")
            async with testing.connect(rooms, "lobby") as client:
                await room.set_alarm("count", delay=0)
                with trio.fail_after(10):
                    await storage.arrived.wait()  # on_alarm waits on its read
                client.send(Increment())
                await trio.testing.wait_all_tasks_blocked()
                assert "message" not in journal.events
                storage.release.set()
                with trio.fail_after(10):
                    assert await client.receive() == Count(2)
            assert journal.events[-3:] == ["alarm count", "alarm done", "message"]


# -------------------------------------------------------------- bad input


async def test_bad_alarm_arguments_are_refused_and_set_nothing() -> None:
    """Missing or doubled times, naive or infinite times, bad delays and bad names raise."""
    journal = Journal()
    config = RoomsConfig(max_alarm_name_length=8)
    async with open_alarm_rooms(journal, config=config) as rooms:
        room = await rooms.get("lobby")
        with pytest.raises(TypeError, match="exactly one of at= and delay="):
            await room.set_alarm("a")
        with pytest.raises(TypeError, match="exactly one of at= and delay="):
            await room.set_alarm("a", at=1.0, delay=1.0)
        with pytest.raises(ValueError, match="aware datetime"):
            await room.set_alarm("a", at=datetime(2030, 1, 1))
        for at in (math.inf, math.nan):
            with pytest.raises(ValueError, match="finite UNIX time"):
                await room.set_alarm("a", at=at)
        for delay in (-1.0, math.inf, math.nan):
            with pytest.raises(ValueError, match="finite number >= 0"):
                await room.set_alarm("a", delay=delay)
        for name in ("", "ninechars"):
            with pytest.raises(ValueError, match="1 to 8 characters"):
                await room.set_alarm(name, delay=1)
            with pytest.raises(ValueError, match="1 to 8 characters"):
                await room.cancel_alarm(name)
        assert room.alarms() == {}
        await room.set_alarm("8chars!!", delay=1)
        assert list(room.alarms()) == ["8chars!!"]


async def test_evict_refuses_a_room_with_sessions() -> None:
    """testing.evict raises for a room that is not idle, and does nothing for an absent one."""
    journal = Journal()
    async with open_alarm_rooms(journal) as rooms:
        await testing.evict(rooms, "nobody-here")
        async with testing.connect(rooms, "lobby"):
            with pytest.raises(RuntimeError, match="not idle"):
                await testing.evict(rooms, "lobby")
        await rooms.wait_statistics(lambda stats: stats.sessions == 0)
        await testing.evict(rooms, "lobby")
        assert journal.events == ["start lobby", "stop lobby"]
