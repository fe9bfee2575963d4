"""``Gate``: a room's input gate, which lets one of its events run at a time.

Every event of a room (a session's message, connect or close, a route call, an alarm,
``on_start`` and ``on_stop``) runs holding its gate, so an event's read-modify-write of
the room's attributes, its storage and its sessions' data is never interleaved with
another event of the room, whatever it awaits. Tasks of the room's own (`Room.start_soon`)
take it with `Room.exclusive`.

trio cannot tell an await on storage from any other await, as the Durable Objects
runtime does, so the gate stays closed across every await of an event: what lets other
events in while waiting on something slow is said explicitly (`Room.unlocked`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import final

import trio

__all__ = ["Exclusive", "Gate", "Unlocked"]

_logger = logging.getLogger("trio_rooms")

#: Keeping other events waiting for the gate longer than this is worth a warning.
SLOW_EVENT = 1.0


@final
class Gate:
    """A fair lock, re-entrant for the task that holds it, that does not yield when free.

    Not yielding matters on the hot path: a session's handler takes it once per message
    and must not give up its turn for it (nor read the clock: only a wait is timed).
    ``on_release`` runs when it is let go for good after something set ``dirty`` (the
    room's storage, at an event's first write: the release seals the event's writes).
    """

    __slots__ = ("_depth", "_holder", "_lot", "_on_release", "_since", "dirty", "name", "pinned")

    def __init__(self, on_release: Callable[[], None], name: str = "") -> None:
        self._holder: trio.lowlevel.Task | None = None
        self._depth = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._on_release = on_release
        self._since = 0.0
        #: The room's name, for the warning about an event that holds it too long.
        self.name: str = name
        #: Open transactions: the gate may not be let go in the middle of one.
        self.pinned: int = 0
        #: ``on_release`` has work to do at the next release for good (then cleared):
        #: most events write nothing, and their release then makes no call at all.
        self.dirty: bool = False

    @property
    def held(self) -> bool:
        """Whether some task holds the gate."""
        return self._holder is not None

    def held_here(self) -> bool:
        """Whether the current task holds the gate."""
        return self._holder is not None and self._holder is trio.lowlevel.current_task()

    async def acquire(self) -> None:
        """Wait for the gate, in the order tasks asked; at once if this task holds it."""
        task = trio.lowlevel.current_task()
        if self._holder is task:
            self._depth += 1
            return
        if self._holder is None:
            self._holder = task
            self._depth = 1
            return
        if not self._lot:
            self._since = trio.current_time()  # the first to wait: the clock starts
        await self._lot.park()  # `release` hands the gate over before waking us
        assert self._holder is task

    def acquire_nowait(self) -> None:
        """Take the gate if it is free or this task holds it; never waits.

        The handler's path: a coroutine less per message than `acquire`.

        Raises:
            trio.WouldBlock: another task holds it (`acquire` waits for it in turn).
        """
        task = trio.lowlevel.current_task()
        if self._holder is task:
            self._depth += 1
        elif self._holder is None:  # (then nobody waits: `release` hands it over)
            self._holder = task
            self._depth = 1
        else:
            raise trio.WouldBlock

    def release(self) -> None:
        """Let the gate go (once per `acquire`); the longest waiter gets it next."""
        self._depth -= 1
        if self._depth:
            return
        if self.dirty:
            self.dirty = False
            self._on_release()
        if self._lot:
            now = trio.current_time()
            if now - self._since > SLOW_EVENT:
                _logger.warning(
                    "room %r: an event kept %d more waiting for %.1f s; wrap slow waits "
                    "outside the room in `async with room.unlocked():`",
                    self.name,
                    len(self._lot),
                    now - self._since,
                )
            (self._holder,) = self._lot.unpark()
            self._depth = 1
            self._since = now  # those left wait for the next holder from now
        else:
            self._holder = None

    async def release_for(self) -> int:
        """Let the gate go entirely, whatever this task's depth; return that depth.

        `reacquire` with the returned depth takes it back.

        Raises:
            RuntimeError: a transaction is open.
        """
        if self.pinned:
            raise RuntimeError("room.unlocked() cannot be used inside a storage transaction")
        depth, self._depth = self._depth, 1
        self.release()
        await trio.lowlevel.checkpoint()
        return depth

    async def reacquire(self, depth: int) -> None:
        """Take the gate back at ``depth`` after `release_for`."""
        await self.acquire()
        self._depth = depth

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


@final
class Exclusive:
    """What `Room.exclusive` returns: an async context manager holding the room's gate."""

    __slots__ = ("_gate",)

    _gate: Gate

    def __init__(self) -> None:
        raise TypeError("Exclusive is made by room.exclusive()")

    @classmethod
    def _over(cls, gate: Gate) -> Exclusive:
        exclusive = object.__new__(cls)
        exclusive._gate = gate
        return exclusive

    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._gate.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._gate.release()


@final
class Unlocked:
    """What `Room.unlocked` returns: an async context manager that lets the gate go."""

    __slots__ = ("_depth", "_gate")

    _gate: Gate
    _depth: int

    def __init__(self) -> None:
        raise TypeError("Unlocked is made by room.unlocked()")

    @classmethod
    def _over(cls, gate: Gate) -> Unlocked:
        unlocked = object.__new__(cls)
        unlocked._gate = gate
        unlocked._depth = 0
        return unlocked

    async def __aenter__(self) -> None:
        if self._gate.held_here():
            self._depth = await self._gate.release_for()
        else:
            await trio.lowlevel.checkpoint()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._depth:
            depth, self._depth = self._depth, 0
            with trio.CancelScope(shield=True):  # the hook resumes holding it, always
                await self._gate.reacquire(depth)
