"""The ``Cluster`` port: which node owns a room, for the single-owner mode.

With a cluster, a room runs only on the node holding its lease: the registry acquires
it before the room starts (raising the room's fence in the storage to its token before
``on_start`` reads anything), every commit of the room carries that token
(`Commit.fence`), and the room stops at once when the lease ends. The core only talks
to these Protocols; ``trio_rooms.backplane`` has the Redis implementation.
"""

from __future__ import annotations

from typing import Protocol

import trio

from .._errors import RoomsError

__all__ = ["Cluster", "OwnedElsewhereError", "OwnedRoom"]


class OwnedElsewhereError(RoomsError):
    """The room's lease is another node's: it cannot run here."""

    def __init__(self, room: str) -> None:
        super().__init__(f"room {room!r} is owned by another node")
        self.room = room


class OwnedRoom(Protocol):
    """This node's lease on one room."""

    @property
    def token(self) -> int:
        """The fencing token: larger than every earlier owner's."""
        ...

    @property
    def ended(self) -> trio.Event:
        """Set once the lease is not this node's any more (released, lapsed, taken)."""
        ...

    async def release(self) -> None:
        """Give the lease back now, so that another node may take the room at once."""
        ...


class Cluster(Protocol):
    """Decides which node owns each room name; one per `open_rooms` block."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the leases alive until cancelled; started once it can acquire."""
        ...

    async def acquire(self, room: str) -> OwnedRoom | None:
        """Take ``room``'s lease; None if another node holds it.

        Raises:
            BackplaneError: the coordinator could not be reached in time.
        """
        ...
