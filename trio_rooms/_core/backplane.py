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
from typing import Protocol, cast, final

import attrs
import msgpack
import trio

from .._delivery import COALESCE, DISCONNECT, DROP_OLDEST, PolicySpec

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
    #: The tags a tagged broadcast is for (each node finds its own sessions that have
    #: them); None: every session.
    tags: tuple[str, ...] | None = None
    #: The send's own delivery policy; None: the message class's.
    policy: PolicySpec | None = None

    def pack(self) -> bytes:
        fields: list[object] = [self.origin, list(self.exclude), self.message]
        if self.tags is not None or self.policy is not None:
            tags = list(self.tags) if self.tags is not None else None
            policy = None
            if self.policy is not None:
                code, names, key = self.policy
                policy = [code, list(names), key]
            fields += [tags, policy]
        return msgpack.packb(fields)

    @classmethod
    def unpack(cls, payload: bytes) -> Envelope:
        """Raises ValueError when ``payload`` is not an envelope."""
        try:
            fields: object = msgpack.unpackb(payload)
        except Exception as exc:
            raise ValueError("not a trio_rooms broadcast envelope") from exc
        items = cast("list[object]", fields) if isinstance(fields, list) else []
        if len(items) == 3:
            items += [None, None]  # from a node that sends neither tags nor policies
        if len(items) != 5:
            raise ValueError("not a trio_rooms broadcast envelope")
        origin, exclude, message, tags, policy = items
        if not (isinstance(origin, str) and isinstance(message, bytes)):
            raise ValueError("not a trio_rooms broadcast envelope")  # noqa: TRY004 - bad input, as documented
        excluded = _strings(exclude)
        tagged = None if tags is None else _strings(tags)
        spec = None if policy is None else _spec(policy)
        if excluded is None or (tags is not None and tagged is None):
            raise ValueError("not a trio_rooms broadcast envelope")
        if policy is not None and spec is None:
            raise ValueError("not a trio_rooms broadcast envelope: its delivery policy")
        return cls(origin, excluded, message, tagged, spec)


def _strings(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    items = tuple(cast("list[object]", value))
    return cast("tuple[str, ...]", items) if all(isinstance(i, str) for i in items) else None


def _spec(value: object) -> PolicySpec | None:
    if not isinstance(value, list):
        return None
    items = cast("list[object]", value)
    if len(items) != 3:
        return None
    code, names, key = items
    strings = _strings(names)
    if type(code) is not int or code not in (DISCONNECT, DROP_OLDEST, COALESCE):
        return None
    if strings is None or not (key is None or type(key) in (str, int, bytes)):
        return None
    return code, strings, cast("str | int | bytes | None", key)
