"""``ParkedSession``: a session whose tasks ended while its connection was silent.

Durable Objects' hibernatable WebSockets are the model, but the `Session` stays (its
user keeps state on it): what goes is its tasks, their coroutines, cancel scopes and
nursery, and its transport's read buffers. The transport watches the connection without
a task of its own, and runs the session on (`resume`) when the client sends something,
or when the session needs its writer again (`OutboundQueue.park`): a frame that cannot
be written at once, its close, a room stopping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, final

from .connection import Connection
from .stats import Counters

__all__ = ["Parkable", "ParkedSession"]


class Parkable(Protocol):
    """What a parked session runs on with: its runner (`SessionRunner`)."""

    def run_on(self, connection: Connection) -> Awaitable[tuple[int, str] | ParkedSession]:
        """Run on ``connection`` from where it parked: its code once the session ended."""
        ...


@final
class ParkedSession:
    """What `serve_session` returns for a parked session: `resume` runs it on."""

    __slots__ = ("_connection", "_counters", "_held", "_runner", "_wake", "_woken")

    def __init__(self, runner: Parkable, connection: Connection, counters: Counters) -> None:
        self._runner = runner
        self._connection = connection
        self._counters = counters
        self._wake: Callable[[], None] | None = None
        self._woken = False
        #: The transport holds it (`held`): counted in ``parked_sessions`` until `resume`.
        self._held = False

    def parked(self) -> None:
        """It parks (again): no wake-up is asked for yet."""
        self._wake = None
        self._woken = False

    def wake_with(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` (once) when the session needs its tasks again.

        Returns False if it needs them already (it was woken while its tasks ended):
        the transport runs it on at once.
        """
        if self._woken:
            return False
        self._wake = wake
        return True

    def needed(self) -> None:
        """The session needs its tasks: its queue, its close or its room say so."""
        wake, self._wake = self._wake, None
        self._woken = True
        if wake is not None:
            wake()

    def held(self) -> None:
        """The transport took the connection: the session is parked, and counted so.

        Not before: until then the transport may refuse (a closing socket, a full epoll
        set), and the session runs on without having parked.
        """
        if not self._held:
            self._held = True
            counters = self._counters
            counters.parked += 1
            counters.parks += 1
            counters.changed()

    def taken(self) -> None:
        """The transport runs it on (the client sent something): nobody else wakes it."""
        self._wake = None
        self._woken = True

    def resume(self) -> Awaitable[tuple[int, str] | ParkedSession]:
        """Run the session on from where it parked until it ends (its code) or parks again.

        No admission and no hook but those its frames call: the handler reads the next
        frame, the writer writes what was queued meanwhile, in order. What is returned
        is the session's run itself, for the caller to await (no coroutine in between).
        """
        if self._held:  # uncounted once, however it runs on (its input, its close)
            self._held = False
            self._counters.parked -= 1
            self._counters.changed()
        return self._runner.run_on(self._connection)
