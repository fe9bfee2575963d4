"""``RoomStorage``: ``room.storage``, a room's durable key-value state, typed by cattrs."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar, final

import trio

from .._errors import StorageError
from .alarms import RoomAlarms
from .room_state import RoomState
from .storage import data_converter

__all__ = ["RoomStorage"]

T = TypeVar("T")


@final
class RoomStorage:
    """A room's durable key-value state, typed through cattrs: ``room.storage``.

    ::

        async def on_message(self, message: Increment) -> None:
            n = await self.room.storage.get("n", int) or 0
            await self.room.storage.put("n", n + 1)
            self.broadcast(Count(n + 1))

    Reads after the first come from memory. The writes of one event (a message, a
    connect, a route call, an alarm) are committed together, atomically, once it
    ends, and with those of the events that ran while the previous commit was being
    written. A message sent after a write leaves only once that write is durable, so
    no client ever sees a state that a crash then loses. It outlives the room: a room
    evicted and made again, or a restarted server on the same storage, reads what was
    stored.
    """

    __slots__ = ("_alarms", "_state")

    _state: RoomState
    _alarms: RoomAlarms

    def __init__(self) -> None:
        raise TypeError("RoomStorage is room.storage, made by the room")

    @classmethod
    def _over(cls, state: RoomState, alarms: RoomAlarms) -> RoomStorage:
        # The one constructor, for Room: the engine stays out of the public API.
        storage = object.__new__(cls)
        storage._state = state
        storage._alarms = alarms
        return storage

    async def get(self, key: str, type: type[T]) -> T | None:
        """The value stored under ``key``, structured as ``type``; None if absent.

        Raises:
            StorageError: the backend failed, or the stored value is not a ``type``.
        """
        raw = await self._state.get(key)
        if raw is None:
            return None
        try:
            return data_converter.loads(raw, type)
        except Exception as exc:
            room = self._state.room
            raise StorageError(f"room {room!r}: value of {key!r} is not a {type!r}") from exc

    async def put(self, key: str, value: object) -> None:
        """Store ``value`` (anything cattrs can unstructure) under ``key``.

        Committed with the event's other writes; see the class. `flush` waits for it.

        Raises:
            StorageError: an earlier commit of the room failed (the room is restarting).
        """
        data = data_converter.dumps(value)
        await _write_point(self._state)
        self._state.put(key, data)

    async def delete(self, key: str) -> None:
        """Remove ``key``, committed like `put`."""
        await _write_point(self._state)
        self._state.put(key, None)

    async def flush(self) -> None:
        """Wait until every write made so far is durable.

        Only needed before telling something outside the room (another service) about
        a write: messages to the room's clients wait for it on their own.

        Raises:
            StorageError: the commit failed.
        """
        await self._state.flush()

    def transaction(self) -> Transaction:
        """A block whose writes land together, or not at all if it raises::

            async with self.room.storage.transaction():
                await self.room.storage.put("from", balance_from - amount)
                await self.room.storage.put("to", balance_to + amount)

        It holds the room's gate (`Room.exclusive`), so it also suits tasks of the
        room's own. Inside, reads see the block's own writes. Transactions do not nest,
        and `Room.unlocked` cannot be used inside one. Alarms set or cancelled inside
        (`Room.set_alarm`) are part of it.
        """
        return Transaction._over(self._state, self._alarms)  # pyright: ignore[reportPrivateUsage] - its constructor


@final
class Transaction:
    """What `RoomStorage.transaction` returns: an async context manager."""

    __slots__ = ("_alarms", "_state")

    _state: RoomState
    _alarms: RoomAlarms

    def __init__(self) -> None:
        raise TypeError("Transaction is made by RoomStorage.transaction()")

    @classmethod
    def _over(cls, state: RoomState, alarms: RoomAlarms) -> Transaction:
        transaction = object.__new__(cls)
        transaction._state = state
        transaction._alarms = alarms
        return transaction

    async def __aenter__(self) -> None:
        state = self._state
        await trio.lowlevel.checkpoint_if_cancelled()
        await state.gate.acquire()
        try:
            state.begin()
            self._alarms.begin()
        except BaseException:
            state.gate.release()
            raise
        state.gate.pinned += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        state = self._state
        state.gate.pinned -= 1
        try:
            self._alarms.end(commit=exc_type is None)
            state.end(commit=exc_type is None)
        finally:
            state.gate.release()


#: Writes of a room between two schedule points: a loop of puts still lets others run.
WRITES_PER_YIELD = 64


async def _write_point(state: RoomState) -> None:
    """A cancel point before a write (a cancelled put writes nothing), rarely a schedule point.

    The event holds the room's gate: yielding at every write made each other event of the
    room wait a scheduler turn (a cached `get` does not yield either). Every
    `WRITES_PER_YIELD`-th write yields all the same, so a long loop of writes cannot keep
    the other rooms from running.
    """
    state.writes_since_yield += 1
    if state.writes_since_yield < WRITES_PER_YIELD:
        await trio.lowlevel.checkpoint_if_cancelled()
    else:
        state.writes_since_yield = 0
        await trio.lowlevel.checkpoint()
