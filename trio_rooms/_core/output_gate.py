"""``Durability``: the output gate a room's sessions' frames pass.

A frame a session queues after a write waits until that write is durable (its
``after``, the room's commit seq then): no client sees state a crash could take back.
`Durability` follows the room's last durable commit, and which queues wait for a later
one; as the committer advances it, their frames go, those for other nodes first (or,
with a commit that carries them, inside it: `release_forwards`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, final

__all__ = ["Durability", "GatedQueue"]


class GatedQueue(Protocol):
    """A queue whose frames wait for the room's writes (`OutboundQueue`)."""

    #: Whether it watches its `Durability` (set and cleared by it).
    watching: bool

    @property
    def forward(self) -> Callable[[], None] | None:
        """Sends what it released to another node, if its frames go there."""
        ...

    def held_past(self, seq: int) -> bool:
        """Whether its next frame waits for a commit after ``seq``."""
        ...

    def release(self, seq: int) -> None:
        """Let go the frames that wait for writes up to ``seq``."""
        ...


@final
class Durability:
    """How far a room's writes are durable: the output gate its sessions' frames pass.

    ``seq`` is the sequence number of the room's last durable commit. A queue whose
    next frame waits for a later one watches it, and its writer is woken once ``seq``
    moves on.
    """

    __slots__ = ("_watching", "seq")

    def __init__(self) -> None:
        self.seq: int = 0
        self._watching: list[GatedQueue] = []

    def watch(self, queue: GatedQueue) -> None:
        """Wake ``queue``'s writer at the next `advance`."""
        if not queue.watching:
            queue.watching = True
            self._watching.append(queue)

    def advance(self, seq: int) -> None:
        """Writes up to ``seq`` are durable: let the frames waiting for them go.

        The queues whose frames go to another node (``forward`` set) go first, and what
        they gathered is sent before the local sockets are written: a relayed client
        then waits for one hop, not for the owner's whole local fan-out before it.
        """
        self.seq = seq
        watching, self._watching = self._watching, []
        forwards: dict[Callable[[], None], None] = {}
        local: list[GatedQueue] = []
        for queue in watching:
            if queue.held_past(seq):
                self._watching.append(queue)  # a later commit's: nothing to release yet
                continue
            forward = queue.forward
            if forward is None:
                local.append(queue)
                continue
            queue.watching = False
            queue.release(seq)
            forwards[forward] = None
        for forward in forwards:
            forward()
        for queue in local:
            queue.watching = False
            queue.release(seq)

    def release_forwards(self, seq: int) -> None:
        """Let the frames waiting for writes up to ``seq`` go to other nodes now, before
        those writes are durable: into the commit that makes them so.

        For a commit that carries them (`RoomState.route`): what it carries reaches
        the other nodes in the same step as the writes, or not at all, so the output
        gate holds. ``seq`` does not move; the local sockets wait for the commit.
        """
        watching = self._watching
        if not any(queue.forward is not None for queue in watching):
            return
        self._watching = []  # a queue still held by a later commit watches again
        for queue in watching:
            if queue.forward is None or queue.held_past(seq):
                self._watching.append(queue)
            else:
                queue.watching = False
                queue.release(seq)
