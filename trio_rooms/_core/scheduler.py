"""``AlarmScheduler``: fires the durable alarms of every room of one `open_rooms` block.

It learns the earliest alarms from the storage (`Storage.next_alarms`) when it starts
and after each alarm it fired, sleeps until the earliest is due (woken early when a
room sets an earlier one, once that is durable), and fires each due alarm: it gets the
room (bringing back an evicted one, ``on_start`` first), runs ``on_alarm`` under the
room's gate like any event, and in the same commit as the handler's writes deletes the
alarm, or, if the handler raised, sets it again for a retry with exponential backoff.

At least once: an alarm is deleted only in the commit of the handler that ran it, so a
crash, or a shutdown that cancels the handler, before that commit fires it again after
the restart; an alarm that fell due while the server was down fires right after start.
The wall clock is read through `AlarmScheduler.clock` alone, so tests can replace it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, final

import attrs
import trio

from .._errors import (
    BackplaneError,
    OwnedElsewhereError,
    OwnershipLostError,
    RoomsClosedError,
    StorageError,
    TooManyRoomsError,
)
from .config import RoomsConfig
from .room import Room, room_runner_of
from .room_state import RoomState
from .storage import Storage, StoredAlarm

__all__ = ["AlarmScheduler", "wall_clock"]

_logger = logging.getLogger("trio_rooms")

#: The wall clock of the schedulers made in this context: `trio_rooms.testing.wall_clock`
#: sets it, so that a test's rooms read it from their first look at the storage on.
wall_clock: ContextVar[Callable[[], float]] = ContextVar("trio_rooms_wall_clock", default=time.time)

_Key = tuple[str, str]  # (room, name)


@final
class AlarmScheduler:
    """Fires the alarms stored in ``storage`` in the rooms ``get_room`` returns.

    Args:
        storage: The rooms' storage.
        config: The retry and concurrency limits.
        get_room: The registry's ``get``: the live room of a name, made if needed.
        failed_fence: The fencing token this node held for a room whose start just
            failed (0: none, or no cluster): what a retry stored for it carries.
        look_every: The longest wait between two looks at the storage. Only this
            node's rooms announce the alarms they set; in a cluster another node's are
            seen by looking again, so that when their owner dies or steps down they
            fire here (inf: one node, every alarm is announced).
    """

    def __init__(
        self,
        storage: Storage,
        config: RoomsConfig,
        get_room: Callable[[str], Awaitable[Room[Any]]],
        failed_fence: Callable[[str], int] = lambda room: 0,
        look_every: float = math.inf,
    ) -> None:
        self._storage = storage
        self._config = config
        self._get_room = get_room
        self._failed_fence = failed_fence
        self._look_every = look_every
        #: The wall clock (UNIX time): every alarm time is read from it.
        self.clock: Callable[[], float] = wall_clock.get()
        self._limiter = trio.CapacityLimiter(config.max_concurrent_alarms)
        #: Alarms being fired, by room and name; set when their handler has ended.
        self._in_flight: dict[_Key, trio.Event] = {}
        self._wake = trio.Event()
        #: The earliest future alarm the last look at the storage found (inf: none).
        self._next_at = math.inf
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()

    # ------------------------------------------------------------ AlarmClock

    def now(self) -> float:
        """The wall-clock (UNIX) time."""
        return self.clock()

    def announce(self, alarm: StoredAlarm, state: RoomState, seq: int) -> None:
        """A room set ``alarm``: look at the storage again once it is durable, if earlier."""
        nursery = self._nursery
        if nursery is None or alarm.at >= self._next_at:
            return
        self._next_at = alarm.at  # later sets need no word of their own
        nursery.start_soon(self._wake_when_durable, state, seq)

    async def _wake_when_durable(self, state: RoomState, seq: int) -> None:
        try:
            await state.wait_durable(seq)
        except StorageError:
            return  # not stored, not to be fired (the room restarts from storage)
        self._wake.set()

    # --------------------------------------------------------------- running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire alarms as they fall due, until cancelled or `stop`; started once it runs."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    self._wake = trio.Event()
                    try:
                        wait = await self._fire_round()
                    except StorageError:
                        # The rooms go on without their alarms for a while.
                        _logger.exception("could not read the alarms; trying again soon")
                        wait = self._config.alarm_retry_delay
                    with trio.move_on_after(min(wait, self._look_every)):
                        await self._wake.wait()

    def stop(self) -> None:
        """Fire nothing more and cancel the handlers running (their alarms fire again later)."""
        self._scope.cancel()
        self._nursery = None

    async def _fire_round(self) -> float:
        """Start the due alarms that have a free slot; return the seconds until the next one."""
        slots = self._config.max_concurrent_alarms - len(self._in_flight)
        if slots <= 0:
            return math.inf  # an alarm that ends wakes us
        now = self.clock()
        limit = len(self._in_flight) + slots
        # Until the answer is in, any alarm a room sets may be missing from it: each
        # earlier than this (all of them) is announced.
        self._next_at = math.inf
        batch = await self._storage.next_alarms(limit)
        for alarm in batch:
            if (alarm.room, alarm.name) in self._in_flight:
                continue
            if alarm.at > now:
                self._next_at = alarm.at
                return max(0.0, alarm.at - self.clock())
            if len(self._in_flight) >= self._config.max_concurrent_alarms:
                return math.inf
            self._start(alarm)
        # Every alarm seen was due: if the storage may hold more, look again at once.
        return 0.0 if len(batch) == limit else math.inf

    async def fire_due(self) -> None:
        """Fire every alarm due now, and return once their handlers (and commits) ended.

        Alarms already firing are waited for. One pass: an alarm that a handler sets to
        fall due at once is left to the scheduler.

        Raises:
            RuntimeError: the scheduler is not running.
        """
        if self._nursery is None:
            raise RuntimeError("the rooms' alarm scheduler is not running")
        now = self.clock()
        limit = 64
        while True:
            batch = await self._storage.next_alarms(limit)
            if len(batch) < limit or batch[-1].at > now:
                break
            limit *= 2
        fired: list[trio.Event] = []
        for alarm in batch:
            if alarm.at > now:
                break
            done = self._in_flight.get((alarm.room, alarm.name))
            fired.append(done if done is not None else self._start(alarm))
        for done in fired:
            await done.wait()

    def _start(self, alarm: StoredAlarm) -> trio.Event:
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("the rooms' alarm scheduler is not running")
        done = self._in_flight[alarm.room, alarm.name] = trio.Event()
        nursery.start_soon(self._fire, alarm, done)
        return done

    # ---------------------------------------------------------------- firing

    async def _fire(self, alarm: StoredAlarm, done: trio.Event) -> None:
        try:
            async with self._limiter:
                await self._fire_in_room(alarm)
        finally:
            del self._in_flight[alarm.room, alarm.name]
            done.set()
            self._wake.set()  # its slot is free, and it may have been set again

    async def _fire_in_room(self, alarm: StoredAlarm) -> None:
        try:
            room = await self._get_room(alarm.room)
        except RoomsClosedError:
            return  # shutting down: it fires after the restart
        except TooManyRoomsError:
            _logger.warning(
                "alarm %r of room %r waits: %d rooms are live (RoomsConfig.max_rooms)",
                alarm.name,
                alarm.room,
                self._config.max_rooms,
            )
            await trio.sleep(self._config.alarm_retry_delay)  # then the next round
            return
        except (OwnedElsewhereError, OwnershipLostError, BackplaneError):
            # Its owner fires it (or, once its lease lapsed, whichever node takes the
            # room next); no attempt is spent. Looked at again after the retry delay.
            await trio.sleep(self._config.alarm_retry_delay)
            return
        except Exception:
            _logger.exception("room %r failed to start for its alarm %r", alarm.room, alarm.name)
            await self._retry_stored(alarm)
            return
        runner = room_runner_of(room)
        # A failed commit is logged by the room's committer; the room restarts.
        with runner.hold(), contextlib.suppress(StorageError):
            await self._run_handler(room, alarm)

    async def _run_handler(self, room: Room[Any], alarm: StoredAlarm) -> None:
        runner = room_runner_of(room)
        alarms = runner.alarms
        async with runner.gate:
            if alarms.get(alarm.name) != alarm:
                return  # set again or cancelled since the storage was read
            try:
                await room.on_alarm(alarm.name, alarm.attempt)
            except Exception:
                _logger.exception(
                    "on_alarm(%r, attempt=%d) failed in room %r",
                    alarm.name,
                    alarm.attempt,
                    room.name,
                )
                if alarms.get(alarm.name) == alarm:  # not set again by the handler
                    alarms.put(alarm.name, self._retry(alarm))
            else:
                if alarms.get(alarm.name) == alarm:
                    alarms.put(alarm.name, None)
        # Its handler's writes and its deletion are one commit; wait until it is in.
        await runner.state.flush()

    def _retry(self, alarm: StoredAlarm) -> StoredAlarm | None:
        """``alarm`` again after a failure, later by the backoff; None once out of attempts."""
        config = self._config
        attempt = alarm.attempt + 1
        if attempt >= config.alarm_max_attempts:
            _logger.error(
                "alarm %r of room %r dropped after %d failed attempts "
                "(RoomsConfig.alarm_max_attempts)",
                alarm.name,
                alarm.room,
                attempt,
            )
            return None
        # min() before the power would overflow: attempts are bounded, but large.
        delay = min(
            config.alarm_retry_delay * 2.0 ** min(alarm.attempt, 64), config.alarm_retry_max_delay
        )
        return attrs.evolve(alarm, at=self.clock() + delay, attempt=attempt)

    async def _retry_stored(self, alarm: StoredAlarm) -> None:
        """Count a failure of an alarm whose room could not start, in the storage itself.

        Fenced with the token this node held for the room when its start failed: a node
        that lost the room meanwhile does not move the new owner's alarm.
        """
        fence = self._failed_fence(alarm.room)
        try:
            await self._storage.replace_alarm(alarm, self._retry(alarm), fence=fence)
        except OwnershipLostError:
            return  # another node owns the room now: it fires (and retries) the alarm
        except StorageError:
            _logger.exception(
                "alarm %r of room %r: its retry was not stored", alarm.name, alarm.room
            )
