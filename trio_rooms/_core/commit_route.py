"""The ``CommitRoute`` port: a way for a room's commits other than its storage's own.

A cluster owner's relayed sessions wait for each commit twice: for the commit's reply,
then for the entry their frames go to their node in. A route that writes both in one
step (`trio_rooms.backplane` has the Redis one) takes the frames the commit lets go
into the commit itself: they reach the other node's stream only if the commit's writes
are durable, so the output gate holds, one round trip sooner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from .storage import Commit

__all__ = ["CommitRoute", "RoutesCommits"]


class CommitRoute(Protocol):
    """Writes a fenced room's commits with the frames they let go to other nodes."""

    async def commit(self, commit: Commit, release: Callable[[], None]) -> Sequence[bool] | None:
        """Write ``commit``, with what ``release`` lets go to other nodes; as
        `Storage.commit` does (its results, its errors).

        ``release`` hands the relayed sessions' frames held by ``commit`` to the route,
        which writes them with it. Returns None, having written nothing, when it has
        nothing to carry or cannot now: the storage writes the commit instead.
        """
        ...


@runtime_checkable
class RoutesCommits(Protocol):
    """A `Cluster` whose owned rooms commit through a route of its own (optional)."""

    @property
    def commit_route(self) -> CommitRoute | None:
        """The route of the rooms this node owns (None: their storage's own)."""
        ...
