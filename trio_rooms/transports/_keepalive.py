"""Keepalive for every connection of a server, from one task.

A timeout scope around each socket read costs more than the read itself on an echo
workload, so reads only set a flag; this task looks at every connection a few times
per interval, pings the silent ones and drops those that stay silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, final

import trio

if TYPE_CHECKING:
    from ._parking import Parking
    from ._watching import Watching

__all__ = ["Keepalive", "Pingable"]


class Pingable(Protocol):
    def keepalive_check(self, now: float, interval: float, timeout: float) -> bool:
        """Ping if silent for ``interval``; True if dead (still silent ``timeout`` later)."""
        ...

    async def keepalive_expire(self) -> None:
        """Drop the connection: its reader sees it end as "keepalive timeout"."""
        ...


@final
class Keepalive:
    """The connections of one server and the task that keeps them honest."""

    def __init__(self, interval: float, timeout: float, park_after: float | None = None) -> None:
        self._interval = interval
        self._timeout = timeout
        # The sweep also decides which silent connections park (`park_after`).
        self._tick = min(interval, timeout, park_after or interval) / 4
        self._connections: set[Pingable] = set()
        #: Where the server's connections park (None: they do not).
        self.parking: Parking | None = None
        #: Where the server's connections are watched (None: they are not).
        self.watching: Watching | None = None

    def add(self, connection: Pingable) -> None:
        self._connections.add(connection)

    def discard(self, connection: Pingable) -> None:
        self._connections.discard(connection)

    async def run(self) -> None:
        """Check every connection four times per interval, until cancelled.

        A dead peer is therefore dropped within ``interval + timeout`` plus a quarter
        of the shortest of the two and ``park_after``; a silent one parks within
        ``park_after`` and as much.
        """
        tick = self._tick
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            dead = [
                connection
                for connection in self._connections
                if connection.keepalive_check(now, self._interval, self._timeout)
            ]
            for connection in dead:
                self._connections.discard(connection)
                await connection.keepalive_expire()
