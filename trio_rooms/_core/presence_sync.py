"""The ``PresenceSync`` port: a room's presence shared by every node, in one order.

A backplane that carries presence has a ``presence`` attribute of this Protocol
(`trio_rooms.backplane.redis.RedisBackplane` does). Without a backplane a room's
presence lives on its one node and changes apply at once; with one, a node's changes
go to the broker, which orders the changes of every node, and each node applies them
as they come back, so every node (and every subscribed client) sees the same diffs in
the same order. Entries of a node that stopped being heard from are removed by the
broker, and every node applies those leaves too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, final, runtime_checkable

import attrs

__all__ = ["PresenceApply", "PresenceBackplane", "PresenceRecord", "PresenceSync"]


@final
@attrs.frozen
class PresenceRecord:
    """One presence as nodes exchange it: its metadata in the room's msgpack encoding."""

    ref: str
    key: str
    session_id: str
    meta: bytes


#: Takes one diff of a watched room: the presences that joined, those that left.
PresenceApply = Callable[[Sequence[PresenceRecord], Sequence[PresenceRecord]], None]


class PresenceSync(Protocol):
    """Carries the presence changes of rooms between nodes, in one order per room.

    Every method is synchronous and never blocks: changes are queued for the
    backplane's task, bounded.
    """

    def watch(self, room: str, apply: PresenceApply) -> None:
        """Start calling ``apply`` with ``room``'s diffs, in the broker's order.

        The first call brings the node up to date (every presence of the room joins);
        after a lost connection, one diff says what changed meanwhile.
        """
        ...

    def unwatch(self, room: str) -> None:
        """Stop calling ``room``'s ``apply``; forget its presences."""
        ...

    def change(self, room: str, joins: Sequence[PresenceRecord], leaves: Sequence[str]) -> None:
        """Add this node's ``joins`` and remove its presences ``leaves`` (by ref), together."""
        ...


@runtime_checkable
class PresenceBackplane(Protocol):
    """A backplane that carries presence."""

    @property
    def presence(self) -> PresenceSync: ...
