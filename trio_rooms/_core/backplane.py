"""The ``Backplane`` port: a room's broadcasts and membership across nodes.

A node is one `open_rooms` block. Without a backplane a room lives on one node;
with one, several nodes serve the same room names: a broadcast is delivered to the
local sessions and published once, and every other node with local sessions in that
room delivers it to its own. The core only talks to this Protocol and moves opaque
bytes through it; `trio_rooms.backplane` has the implementations.

Every method but `run` and `members` is synchronous and never blocks: a broadcast
must never wait for the network. An implementation queues the work for the task
that `run` is, bounded, and counts what it had to drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, final

import attrs
import msgpack
import trio

__all__ = ["Backplane", "BackplaneStatistics", "Delivery", "Envelope"]


@final
@attrs.frozen(kw_only=True)
class BackplaneStatistics:
    """A backplane's state and counters, in `RoomsStatistics.backplane`."""

    #: True while any of the backplane's connections to its broker is lost. While the
    #: broker is unreachable, broadcasts reach local sessions only and `Room.members`
    #: raises `BackplaneError`; while only one connection is being made again, what
    #: depends on the others goes on.
    degraded: bool
    #: Broadcasts published to other nodes.
    published: int
    #: Broadcasts received from other nodes.
    received: int
    #: Broadcasts or membership changes dropped (broker unreachable, queue full).
    dropped: int
    #: Times the connection to the broker was lost and established again.
    reconnects: int


class Delivery(Protocol):
    """Where a backplane delivers what other nodes published: the node's `Rooms`."""

    def deliver(self, room: str, payload: bytes) -> None:
        """Hand ``payload``, published on ``room`` by some node, to the local room."""
        ...


class Backplane(Protocol):
    """Carries broadcasts and room membership between the nodes serving a room.

    Guarantees: at most once, and in order per publishing node (as Redis pub/sub).
    """

    async def run(self, node: Delivery, *, task_status: trio.TaskStatus[None]) -> None:
        """Serve until cancelled: connect, publish, subscribe, deliver to ``node``.

        Calls ``task_status.started()`` without waiting for the broker: a node whose
        broker is down still starts and serves its local sessions. Reconnects on its
        own, with bounded backoff, and subscribes again to the rooms it had.
        """
        ...

    def publish(self, room: str, payload: bytes) -> None:
        """Send ``payload`` to the other nodes subscribed to ``room``; never blocks."""
        ...

    def subscribe(self, room: str) -> None:
        """Start delivering ``room``'s payloads: the node has local sessions there."""
        ...

    def unsubscribe(self, room: str) -> None:
        """Stop delivering ``room``'s payloads: its last local session left."""
        ...

    def join(self, room: str, session_id: str) -> None:
        """Record ``session_id`` as a member of ``room`` on this node."""
        ...

    def leave(self, room: str, session_id: str) -> None:
        """Forget ``session_id`` as a member of ``room``."""
        ...

    async def members(self, room: str) -> Sequence[str]:
        """The session ids of ``room`` on every live node.

        Raises:
            BackplaneError: the broker could not be asked (within a bounded time).
        """
        ...

    def statistics(self) -> BackplaneStatistics:
        """The current state and counters."""
        ...


@final
@attrs.frozen
class Envelope:
    """One broadcast as it travels between nodes."""

    #: The id of the node that published it (a node ignores its own broadcasts).
    origin: str
    #: Session ids the broadcast must not reach (``exclude`` and ``exclude_self``).
    exclude: tuple[str, ...]
    #: The message, encoded by the room's msgpack server codec.
    message: bytes

    def pack(self) -> bytes:
        return msgpack.packb([self.origin, list(self.exclude), self.message])

    @classmethod
    def unpack(cls, payload: bytes) -> Envelope:
        """Raises ValueError when ``payload`` is not an envelope."""
        try:
            origin, exclude, message = msgpack.unpackb(payload)
        except Exception as exc:
            raise ValueError("not a trio_rooms broadcast envelope") from exc
        if not (
            isinstance(origin, str)
            and isinstance(exclude, list)
            and all(isinstance(item, str) for item in exclude)  # pyright: ignore[reportUnknownVariableType]
            and isinstance(message, bytes)
        ):
            raise ValueError("not a trio_rooms broadcast envelope")
        return cls(origin, tuple(exclude), message)  # pyright: ignore[reportUnknownArgumentType]
