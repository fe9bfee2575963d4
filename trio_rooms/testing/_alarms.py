"""Deterministic alarms and evictions: fire what is due, evict a room, fix the wall clock."""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any, TypeVar

from .._core.room import Room
from .._core.rooms import Rooms, registry_of
from .._core.scheduler import wall_clock as _wall_clock

__all__ = ["evict", "fire_due_alarms", "wall_clock"]

RoomT = TypeVar("RoomT", bound=Room[Any])


async def fire_due_alarms(rooms: Rooms[RoomT]) -> None:
    """Fire every alarm of ``rooms`` that is due now; return once their handlers ended.

    ::

        with testing.wall_clock(lambda: now):
            async with trio_rooms.open_rooms(AuctionRoom) as rooms:
                room = await rooms.get("lot-7")
                await room.open_bidding()  # sets the alarm "close" with delay=60
                now += 60
                await testing.fire_due_alarms(rooms)
                assert room.closed

    Each alarm fires as the scheduler would fire it (its room brought back if it was
    evicted, ``on_alarm`` under the room's gate, then deleted or retried in the same
    commit as the handler's writes), and the call returns once those commits are
    durable. An alarm already firing is waited for. One pass: an alarm that a handler
    sets to fall due at once is not fired by this call. A handler that raises is
    logged and retried later, as in production; this call does not raise it.

    Raises:
        RuntimeError: ``rooms`` is shutting down.
    """
    await registry_of(rooms).alarms.fire_due()


async def evict(rooms: Rooms[RoomT], name: str) -> None:
    """Stop the room ``name`` now, as its idle timeout would: ``on_stop``, then gone.

    ::

        await testing.evict(rooms, "lobby")
        room = await rooms.get("lobby")  # a new room object: on_start ran again

    What it stored and the alarms it set stay in the storage. Returns at once if the
    room is not live.

    Raises:
        RuntimeError: the room has sessions, or one of its alarms is firing.
    """
    await registry_of(rooms).evict(name)


@contextmanager
def wall_clock(clock: Callable[[], float]) -> Generator[None]:
    """Make the `open_rooms` blocks entered within read wall-clock time from ``clock``.

    Alarms are kept in wall-clock (UNIX) time, which ``trio.testing.MockClock`` does not
    move: make it follow trio's clock, and every alarm fires at its virtual time::

        async def test_turn_timer(autojump_clock: trio.testing.MockClock) -> None:
            with testing.wall_clock(lambda: 1_000_000.0 + trio.current_time()):
                async with trio_rooms.open_rooms(GameRoom) as rooms:
                    ...  # await trio.sleep(30) lets a 30 s alarm fire

    ``clock`` returns a UNIX time; ``delay=`` of `Room.set_alarm`, the due times and
    the retry backoff are all read from it. To restart rooms over the same storage,
    leave their `open_rooms` block and enter a new one with the same storage object
    (or a new `SqliteStorage` on the same file) inside the same ``wall_clock`` block.
    """
    token = _wall_clock.set(clock)
    try:
        yield
    finally:
        _wall_clock.reset(token)
