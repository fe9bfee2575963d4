"""``RoomAlarms``: a live room's durable alarms, as its events see them.

What the storage held when the room started, with every set and cancel made since,
committed or not: `Room.alarms` reads it, and the scheduler checks against it, under
the room's gate, that the alarm it is about to fire is still the one the room set. The
writes themselves go into the room's storage batches (`RoomState.put_alarm`), so an
alarm set by an event is committed atomically with the event's other writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol, final

from .room_state import RoomState
from .storage import StoredAlarm

__all__ = ["AlarmClock", "RoomAlarms", "alarm_time", "as_datetimes"]


class AlarmClock(Protocol):
    """What a room's alarms need from the scheduler: its wall clock, and a word when set."""

    def now(self) -> float:
        """The wall-clock (UNIX) time."""
        ...

    def announce(self, alarm: StoredAlarm, state: RoomState, seq: int) -> None:
        """``alarm`` was set by the room of ``state``; it is stored once ``seq`` is durable."""
        ...


@final
class _WallClock:
    """The clock of a room that no scheduler runs (made outside `open_rooms`)."""

    def now(self) -> float:
        return time.time()

    def announce(self, alarm: StoredAlarm, state: RoomState, seq: int) -> None:
        pass


def alarm_time(now: float, at: datetime | float | None, delay: float | None) -> float:
    """The wall-clock (UNIX) time that ``at=`` or ``delay=`` of `Room.set_alarm` means.

    Raises:
        TypeError: not exactly one of ``at`` and ``delay`` is given.
        ValueError: ``at`` is a naive datetime or not finite, or ``delay`` is negative
            or not finite.
    """
    if (at is None) == (delay is None):
        raise TypeError("set_alarm() takes exactly one of at= and delay=")
    if delay is not None:
        if not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"set_alarm(): delay must be a finite number >= 0, got {delay!r}")
        return now + delay
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError(
                f"set_alarm(): at must be an aware datetime (with a tzinfo), got {at!r}"
            )
        return at.timestamp()
    assert at is not None
    when = float(at)
    if not math.isfinite(when):
        raise ValueError(f"set_alarm(): at must be a finite UNIX time, got {at!r}")
    return when


@final
class RoomAlarms:
    """The alarms of one live room: loaded when it starts, then kept by its own writes.

    A transaction's sets and cancels are seen by the task that holds it, and kept only
    if it commits, as `RoomState` does with values.
    """

    __slots__ = ("_alarms", "_clock", "_max_name_length", "_state", "_transaction")

    def __init__(self, state: RoomState) -> None:
        self._state = state
        self._alarms: dict[str, StoredAlarm] = {}
        self._transaction: dict[str, StoredAlarm | None] | None = None
        self._clock: AlarmClock = _WallClock()
        self._max_name_length = 128

    def bind(self, clock: AlarmClock, *, max_name_length: int) -> None:
        """Use the scheduler's clock (the room's `Rooms` binds it before the room starts)."""
        self._clock = clock
        self._max_name_length = max_name_length

    def now(self) -> float:
        """The wall-clock (UNIX) time, as the scheduler reads it."""
        return self._clock.now()

    async def load(self) -> None:
        """Read the room's stored alarms (before ``on_start``).

        Raises:
            StorageError: the backend failed.
        """
        stored = await self._state.storage.load_alarms(self._state.room)
        self._alarms = {alarm.name: alarm for alarm in stored}

    # ------------------------------------------------------------------ reads

    def get(self, name: str) -> StoredAlarm | None:
        """The alarm ``name`` as the room sees it now, or None."""
        transaction = self._own_transaction()
        if transaction is not None and name in transaction:
            return transaction[name]
        return self._alarms.get(name)

    def view(self) -> Mapping[str, StoredAlarm]:
        """Every alarm of the room as it sees them now, earliest first."""
        alarms = dict(self._alarms)
        transaction = self._own_transaction()
        for name, alarm in (transaction or {}).items():
            if alarm is None:
                alarms.pop(name, None)
            else:
                alarms[name] = alarm
        return dict(sorted(alarms.items(), key=lambda item: (item[1].at, item[0])))

    def _own_transaction(self) -> dict[str, StoredAlarm | None] | None:
        # Only the task in the transaction writes into it (RoomState's rule).
        return self._transaction if self._state.gate.held_here() else None

    # ------------------------------------------------------------------ writes

    def check_name(self, name: str) -> None:
        """Refuse an alarm name that is empty or longer than ``max_alarm_name_length``.

        Raises:
            ValueError: it is.
        """
        if not isinstance(name, str) or not 0 < len(name) <= self._max_name_length:  # pyright: ignore[reportUnnecessaryIsInstance] - user input
            raise ValueError(
                f"an alarm name must be a str of 1 to {self._max_name_length} characters "
                f"(RoomsConfig.max_alarm_name_length), got {name!r:.200}"
            )

    def set(self, name: str, at: float) -> None:
        """Set the alarm ``name`` for ``at`` (replacing one of that name), attempt 0."""
        self.check_name(name)
        self.put(name, StoredAlarm(room=self._state.room, name=name, at=at))

    def put(self, name: str, alarm: StoredAlarm | None) -> None:
        """Write ``alarm`` (None cancels ``name``) with the event's other writes.

        Raises:
            StorageError: an earlier commit of the room failed (the room is restarting).
        """
        state = self._state
        state.put_alarm(name, alarm)  # raises before anything is kept, if the room failed
        transaction = self._own_transaction()
        if transaction is not None:
            transaction[name] = alarm
        elif alarm is None:
            self._alarms.pop(name, None)
        else:
            self._alarms[name] = alarm
        if alarm is not None:
            self._clock.announce(alarm, state, state.pending())

    # -------------------------------------------------------------- transactions

    def begin(self) -> None:
        """A transaction starts (`RoomStorage.transaction`): keep its writes apart."""
        self._transaction = {}

    def end(self, *, commit: bool) -> None:
        """The transaction ends: keep its writes, or forget them."""
        transaction, self._transaction = self._transaction, None
        if not commit or transaction is None:
            return
        for name, alarm in transaction.items():
            if alarm is None:
                self._alarms.pop(name, None)
            else:
                self._alarms[name] = alarm


def as_datetimes(alarms: Mapping[str, StoredAlarm]) -> dict[str, datetime]:
    """``alarms`` as `Room.alarms` shows them: aware UTC datetimes."""
    return {name: datetime.fromtimestamp(alarm.at, UTC) for name, alarm in alarms.items()}
