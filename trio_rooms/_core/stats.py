"""Counters shared by every room of a ``Rooms``, and their frozen snapshot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import final

import attrs
import trio

from .backplane import BackplaneStatistics

__all__ = ["Counters", "RoomsStatistics"]


@final
@attrs.frozen(kw_only=True)
class RoomsStatistics:
    """A snapshot of a ``Rooms``, from `Rooms.statistics`."""

    #: Live rooms.
    rooms: int
    #: Admitted sessions, over all rooms.
    sessions: int
    #: Bytes waiting in outbound queues, over all sessions.
    queued_bytes: int
    #: Client messages received (complete frames, valid or not).
    messages_in: int
    #: Messages put on outbound queues (a broadcast to N sessions counts N).
    messages_out: int
    #: Messages dropped because their session was already closing.
    dropped: int
    #: Client frames that failed to decode.
    invalid: int
    #: Client messages dropped for going over the rate limit.
    rate_limited: int
    #: Open connections (handshaking ones included), counted against the caps.
    connections: int
    #: Hook exceptions reported to ``on_error``.
    errors: int
    #: Ended sessions by close code (1006: the connection was lost without a close frame).
    closes: Mapping[int, int]
    #: The backplane's state and counters; None without a backplane.
    backplane: BackplaneStatistics | None = None


@final
class Counters:
    """Mutable counters, incremented on hot paths (plain attributes, no locking: trio).

    `changed` wakes `Rooms.wait_statistics`: it is called where connections, sessions,
    rooms and closes change, never per message (a delivery must stay one append).
    """

    __slots__ = (
        "_waiters",
        "closes",
        "dropped",
        "errors",
        "invalid",
        "messages_in",
        "messages_out",
        "rate_limited",
    )

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self.dropped = 0
        self.invalid = 0
        self.rate_limited = 0
        self.errors = 0
        self.closes: Counter[int] = Counter()
        self._waiters = trio.lowlevel.ParkingLot()

    def changed(self) -> None:
        """Wake whoever waits for the statistics to change."""
        if self._waiters:
            self._waiters.unpark_all()

    async def wait_changed(self) -> None:
        """Wait for the next `changed`."""
        await self._waiters.park()
