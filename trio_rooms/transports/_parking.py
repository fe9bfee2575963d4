"""The parked connections of one embedded server, watched by one task.

A parked session has no task of its own (`ParkedSession`); its socket is in one
``epoll`` set of the server, whose descriptor this task waits on with trio. On input or
hang-up it starts the connection's task again, in the server's nursery, which owns it
for shutdown; so does a session that needs its writer (`wake`). Cancelled (the server
shuts down), it starts every parked connection's task: each session then sees its
caller cancelled and closes with 1001, as a live one does.

Parks are asked for a few per turn of the run loop (`ask`): ending a session's tasks
takes tens of microseconds, and clients that connected together fall silent
together, so one keepalive sweep finds hundreds to park; asked at once, their sum
(2 to 20 ms for 200 in the shared bench's s2) would stall every delivery due then.
"""

from __future__ import annotations

import contextlib
import select
from collections import deque
from collections.abc import Callable
from typing import Protocol, final

import trio

__all__ = ["Parking", "Sleeper"]

#: Input, the peer's half-close, errors and hang-ups (the last two always reported).
_EVENTS = select.EPOLLIN | select.EPOLLRDHUP if hasattr(select, "epoll") else 0

#: Parks asked for per turn of the run loop: what a broadcast may wait for is as many.
ASKS_PER_TURN = 8


class Sleeper(Protocol):
    """A parked connection, as its server's `Parking` sees it."""

    def readable(self) -> bool:
        """Its socket has input (or hung up): whether its session must run on."""
        ...

    async def resume(self) -> None:
        """Run the connection on, in a task of its own, until it parks again or ends."""
        ...


@final
class Parking:
    """The parked connections of one server and the task that watches their sockets."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._parked: dict[int, Sleeper] = {}
        self._nursery: trio.Nursery | None = None
        self._closed = False
        #: Asks to park not made yet (`ask`), and whether a task makes them.
        self._asks: deque[Callable[[], None]] = deque()
        self._asking = False

    @staticmethod
    def available() -> bool:
        """Whether this platform has what it takes (Linux's epoll)."""
        return hasattr(select, "epoll")

    def __len__(self) -> int:
        return len(self._parked)

    async def run(self, nursery: trio.Nursery) -> None:
        """Watch the parked sockets until cancelled, starting their tasks in ``nursery``.

        Once cancelled, nothing parks any more (`park` says False), and every parked
        connection's task is started, to see the cancellation of ``nursery``.
        """
        self._nursery = nursery
        epoll = self._epoll
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                for fd, _ in epoll.poll(0):
                    sleeper = self._parked.get(fd)
                    if sleeper is not None and sleeper.readable():
                        self._start(fd)
        finally:
            self._closed = True
            for fd in list(self._parked):
                self._start(fd)
            epoll.close()

    def park(self, fd: int, sleeper: Sleeper) -> bool:
        """Watch ``fd`` for ``sleeper``; False if the server is shutting down (run it on).

        False too if the epoll set cannot take it (``fs.epoll.max_user_watches``, memory):
        the session then runs on as a live one.
        """
        if self._closed or self._nursery is None:
            return False
        try:
            self._epoll.register(fd, _EVENTS)
        except OSError:
            return False
        self._parked[fd] = sleeper
        return True

    def ask(self, ask: Callable[[], None]) -> bool:
        """Call ``ask`` (which asks a connection to park) soon, `ASKS_PER_TURN` per turn.

        False if nothing parks any more (the server is shutting down): not called.
        """
        nursery = self._nursery
        if self._closed or nursery is None:
            return False
        self._asks.append(ask)
        if not self._asking:
            self._asking = True
            nursery.start_soon(self._ask_in_turns)
        return True

    async def _ask_in_turns(self) -> None:
        asks = self._asks
        try:
            while asks:
                for _ in range(min(len(asks), ASKS_PER_TURN)):
                    asks.popleft()()
                # The sessions asked end their tasks in the next turn, with this one.
                await trio.lowlevel.checkpoint()
        finally:
            asks.clear()  # cancelled: the server shuts down, and its sessions with it
            self._asking = False

    def wake(self, fd: int, sleeper: Sleeper) -> None:
        """Start ``sleeper``'s task now if it is parked on ``fd`` (its session needs it,
        or it closes).

        By the descriptor it parked with, and only if still its: a closed one leaves
        the epoll set without a word, and its number may be given to the next connection.
        """
        if self._parked.get(fd) is sleeper:
            self._start(fd)

    def _start(self, fd: int) -> None:
        sleeper = self._parked.pop(fd)
        # Closed already (EBADF): the kernel dropped it from the set itself.
        with contextlib.suppress(OSError):
            self._epoll.unregister(fd)
        assert self._nursery is not None
        self._nursery.start_soon(sleeper.resume)
