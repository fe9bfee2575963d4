"""Counters shared by every room of a ``Rooms``, and their frozen snapshot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import final

import attrs
import trio

from .backplane import BackplaneStatistics

__all__ = ["Counters", "RoomCounters", "RoomStatistics", "RoomsStatistics"]


@final
@attrs.frozen(kw_only=True)
class RoomStatistics:
    """A snapshot of one live room on this node, in `RoomsStatistics.by_room`."""

    #: Its admitted sessions.
    sessions: int
    #: Messages waiting in its sessions' outbound queues.
    queued_frames: int
    #: Bytes waiting there (each message counted up to half of ``outbound_max_bytes``).
    queued_bytes: int
    #: Messages dropped by `DropOldest` since the room started.
    dropped_oldest: int
    #: Messages replaced by a newer one of their key by `Coalesce` since it started.
    coalesced: int
    #: Sessions closed with 1008 as slow consumers (`Disconnect`) since it started.
    slow_consumers: int


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
    #: Messages dropped from full queues by `DropOldest`, over all rooms.
    dropped_oldest: int = 0
    #: Queued messages replaced by a newer one of their key (`Coalesce`), over all rooms.
    coalesced: int = 0
    #: Sessions closed with 1008 as slow consumers (`Disconnect`), over all rooms.
    slow_consumers: int = 0
    #: Each live room of this node by name.
    by_room: Mapping[str, RoomStatistics] = attrs.field(factory=dict[str, RoomStatistics])
    #: With a cluster (one owner per room): the live rooms this node holds the lease of.
    owned_rooms: int = 0
    #: With a cluster: the rooms other nodes own that this node's clients are relayed to.
    relayed_rooms: int = 0
    #: With a cluster: this node's clients served through another node (those whose
    #: session is being opened there included); they are not in ``sessions``.
    relayed_sessions: int = 0
    #: Sessions parked now (``park_after``): in ``sessions``, but with no task of their own.
    parked_sessions: int = 0
    #: Times a session parked, since the start.
    parks: int = 0


@final
class Counters:
    """Mutable counters, incremented on hot paths (plain attributes, no locking: trio).

    `changed` wakes `Rooms.wait_statistics`: it is called where connections, sessions,
    rooms and closes change, never per message (a delivery must stay one append).
    """

    __slots__ = (
        "_waiters",
        "closes",
        "coalesced",
        "dropped",
        "dropped_oldest",
        "errors",
        "invalid",
        "messages_in",
        "messages_out",
        "parked",
        "parks",
        "rate_limited",
        "slow_consumers",
    )

    def __init__(self) -> None:
        self.dropped_oldest: int = 0
        self.coalesced: int = 0
        self.slow_consumers: int = 0
        self.messages_in: int = 0
        self.messages_out: int = 0
        self.dropped: int = 0
        self.invalid: int = 0
        self.rate_limited: int = 0
        self.errors: int = 0
        self.parked: int = 0
        self.parks: int = 0
        self.closes: Counter[int] = Counter()
        self._waiters = trio.lowlevel.ParkingLot()

    def changed(self) -> None:
        """Wake whoever waits for the statistics to change."""
        if self._waiters:
            self._waiters.unpark_all()

    async def wait_changed(self) -> None:
        """Wait for the next `changed`."""
        await self._waiters.park()


@final
class RoomCounters:
    """One room's delivery counters; each count goes to its `Rooms`'s `Counters` too.

    Counted where a policy acts, off the fan-out's hot path.
    """

    __slots__ = ("_total", "coalesced", "dropped_oldest", "slow_consumers")

    def __init__(self, total: Counters | None = None) -> None:
        self._total = total if total is not None else Counters()
        self.dropped_oldest: int = 0
        self.coalesced: int = 0
        self.slow_consumers: int = 0

    def bind(self, total: Counters) -> None:
        """Count into ``total`` (the `Rooms`'s) from now on."""
        self._total = total

    def drop_oldest(self) -> None:
        self.dropped_oldest += 1
        self._total.dropped_oldest += 1

    def coalesce(self) -> None:
        self.coalesced += 1
        self._total.coalesced += 1

    def slow_consumer(self) -> None:
        self.slow_consumers += 1
        self._total.slow_consumers += 1

    def add(self, dropped_oldest: int, coalesced: int, slow_consumers: int) -> None:
        """Count what the queue of a session relayed from another node did there.

        A slow consumer's overflowing message counts as dropped too, as a local one's.
        """
        total = self._total
        self.dropped_oldest += dropped_oldest
        self.coalesced += coalesced
        self.slow_consumers += slow_consumers
        total.dropped_oldest += dropped_oldest
        total.coalesced += coalesced
        total.slow_consumers += slow_consumers
        total.dropped += slow_consumers
