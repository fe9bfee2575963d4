"""The watched connections of one embedded server: sockets read without a task each.

A connection whose reader waits in trio for each message (a relayed client's, whose
every message is handed on at once) costs a readiness wait, an epoll change and a task
switch per message. A watched one's socket is instead in one ``epoll`` set of the
server, level-triggered (registered once, for as long as it is watched), whose
descriptor this task waits on with trio; on input it calls the connection back, which
reads what came without waiting and hands it on, in this task: the sockets that became
readable together cost one wake-up.

A socket closed while watched leaves the set without a word, and its number may be
given to the next connection: a connection is unwatched by the descriptor it was
watched with and only if that is still its own.
"""

from __future__ import annotations

import contextlib
import select
from typing import Protocol, final

import trio

__all__ = ["Watched", "Watching"]

#: Input, the peer's half-close, errors and hang-ups (the last two always reported).
_EVENTS = select.EPOLLIN | select.EPOLLRDHUP if hasattr(select, "epoll") else 0


class Watched(Protocol):
    """A watched connection, as its server's `Watching` sees it."""

    def watched_input(self) -> None:
        """Its socket has input (or hung up): read it. Must not block nor raise."""
        ...


@final
class Watching:
    """The watched connections of one server and the task that watches their sockets."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._watched: dict[int, Watched] = {}
        self._running = False
        self._closed = False

    @staticmethod
    def available() -> bool:
        """Whether this platform has what it takes (Linux's epoll)."""
        return hasattr(select, "epoll")

    def __len__(self) -> int:
        return len(self._watched)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the sockets until cancelled; then nothing is watched any more.

        With ``nursery.start``, returns once connections can be watched. A watched
        connection's reader is in a task that the server's shutdown cancels too.
        """
        epoll, watched = self._epoll, self._watched
        self._running = True
        task_status.started()
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                for fd, _ in epoll.poll(0):
                    connection = watched.get(fd)  # None: unwatched by an earlier call back
                    if connection is not None:
                        connection.watched_input()
        finally:
            self._closed = True
            watched.clear()
            epoll.close()

    def watch(self, fd: int, connection: Watched) -> bool:
        """Call ``connection`` back on input at ``fd``; False if it cannot be watched.

        False once the server shuts down, before it runs, or if the epoll set cannot
        take it (``fs.epoll.max_user_watches``, memory).
        """
        if self._closed or not self._running:
            return False
        try:
            self._epoll.register(fd, _EVENTS)
        except OSError:
            return False
        self._watched[fd] = connection
        return True

    def unwatch(self, fd: int, connection: Watched) -> None:
        """Stop watching ``fd`` for ``connection``, if it is still watched for it."""
        if self._watched.get(fd) is connection:
            del self._watched[fd]
            # Closed already (EBADF): the kernel dropped it from the set itself.
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
