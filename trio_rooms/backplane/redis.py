"""`RedisBackplane`: broadcasts over Redis pub/sub, membership in Redis sorted sets.

::

    from trio_rooms.backplane.redis import RedisBackplane

    backplane = RedisBackplane("redis://localhost:6379/0")
    async with trio_rooms.open_rooms(ChatRoom, backplane=backplane) as rooms:
        ...

Layout in Redis (``prefix`` is ``"trio_rooms:"`` by default):

- channel ``{prefix}room:{name}``: one message per broadcast, the publishing node's
  16-byte id followed by the payload (a node skips its own). Only ``SUBSCRIBE``, never
  ``PSUBSCRIBE``, and only on validated room names.
- sorted set ``{prefix}members:{name}``: one entry ``{node id}:{session id}`` per
  session, scored with the time (Redis's clock, in ms) it expires at. Every node
  refreshes its entries every ``ttl / 3``; readers ignore and trim expired ones, so a
  node that dies without cleaning up stops being listed within ``ttl``.

A node holds four connections: one publishes (in order, pipelined), one is
subscribed, one runs membership scripts and `members` queries, one writes and loads
presence (`presence`); it is degraded while one of them is lost. A connection lost
while Redis still answers (Redis dropped a slow subscriber, ``CLIENT KILL``) is made
again at once, alone: the others carry on, so the node's broadcasts still go out while
it subscribes again. When a connection cannot be
made (Redis down, or hung: no reply within ``timeout``), all four are closed and made
again with backoff; the node is degraded until it has connected again, subscribed
again and re-added its members.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import final

import trio

try:
    import coredis  # noqa: F401  # pyright: ignore[reportUnusedImport] - fails here, naming the extra
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "trio_rooms.backplane.redis needs coredis: pip install trio_rooms[redis]"
    ) from _missing

from .._core.backplane import BackplaneStatistics, Delivery
from .._core.presence_sync import PresenceSync
from .._redis import redacted
from ._cluster import RedisCluster as RedisCluster
from ._membership import Membership
from ._presence import RedisPresence
from ._publisher import Publisher
from ._scripts import Names
from ._subscriber import Subscriber
from ._supervisor import Health, Supervisor

__all__ = ["RedisBackplane", "RedisCluster"]

# The parts, each a module of one idea; each imports only those below it:
#   _supervisor   a connection per role, reconnects and backoff, degraded or not
#   _membership   local members, their writes and refreshes, the commands connection
#   _subscriber   the wanted subscriptions, delivering every message of a read at once
#   _publisher    the bounded queue, published in order and pipelined
#   _connection   opening one connection, round trips, what counts as losing Redis
#   _scripts      channel and key names, Lua scripts, how commands are built


@final
class RedisBackplane:
    """A `trio_rooms.Backplane` on one Redis server (not Redis Cluster).

    Broadcasts are at most once and in order per publishing node; see the module
    docstring for the keys and channels. Every method but `run`, `members` and the
    ``wait_*`` ones is synchronous and never blocks: work is queued, bounded, for the
    task `run` is.

    Args:
        url: ``redis://[[user]:password@]host:port/db``, ``rediss://...`` or
            ``unix://...``, as coredis understands it. Its password is never logged.
        prefix: Starts every channel and key, to share a Redis between deployments.
        ttl: Seconds a node's members stay listed after the node was last heard from.
        timeout: Seconds to wait for a connection or a reply before the connection is
            considered lost; also the bound on `members`.
        health_check_interval: Seconds between PINGs on the subscribed connection,
            which is otherwise silent when no one publishes.
        max_queue: Payloads waiting to be published, and membership changes waiting
            to be written; beyond it they are dropped and counted.
        max_queue_bytes: Bytes of the payloads waiting to be published; beyond it they
            are dropped and counted.
        max_backoff: Longest wait between two reconnect attempts, in seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "trio_rooms:",
        ttl: float = 30.0,
        timeout: float = 2.0,
        health_check_interval: float = 1.0,
        max_queue: int = 10_000,
        max_queue_bytes: int = 16 * 1024 * 1024,
        max_backoff: float = 2.0,
    ) -> None:
        if ttl <= 0 or timeout <= 0 or health_check_interval <= 0 or max_backoff <= 0:
            raise ValueError("ttl, timeout, health_check_interval and max_backoff must be > 0")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        if max_queue_bytes < 1:
            raise ValueError(f"max_queue_bytes must be at least 1, got {max_queue_bytes}")
        self._url = url
        self._where = redacted(url)
        self._names = Names(prefix)
        self._timeout = timeout
        self._max_backoff = max_backoff
        # Every part calls `_changed` where what `statistics` reports changes.
        self._statistics_waiters = trio.lowlevel.ParkingLot()
        node = uuid.uuid4()
        self._membership = Membership(
            self._names,
            node.hex,
            where=self._where,
            ttl=ttl,
            timeout=timeout,
            max_queue=max_queue,
            changed=self._changed,
        )
        self._subscriber = Subscriber(
            node.bytes,
            timeout=timeout,
            health_check_interval=health_check_interval,
            changed=self._changed,
        )
        self._publisher = Publisher(
            node.bytes,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            timeout=timeout,
            changed=self._changed,
        )
        self._presence = RedisPresence(
            prefix, node.hex, self._subscriber, ttl=ttl, timeout=timeout, max_queue=max_queue
        )
        self._health = Health(
            self._where,
            [
                self._membership.name,
                self._subscriber.name,
                self._publisher.name,
                self._presence.name,
            ],
            changed=self._changed,
        )
        self._running = False

    async def run(self, node: Delivery, *, task_status: trio.TaskStatus[None]) -> None:
        """Connect, publish, subscribe and deliver to ``node`` until cancelled.

        ``started()`` is called at once, before connecting: a node whose Redis is down
        starts and serves its local sessions, degraded. Losing Redis is logged once per
        outage (WARNING) and never raised. A connection Redis dropped alone is made
        again at once; when one cannot be made, all are, with exponential backoff and
        jitter, capped at ``max_backoff``. Cancelling closes the connections.

        Raises:
            RuntimeError: ``run`` is already running.
        """
        if self._running:
            raise RuntimeError("RedisBackplane.run is already running")
        self._running = True
        # Membership first (members are listed again before the node subscribes), the
        # publisher last (the node's broadcasts go out once it is subscribed, and once
        # one went out every connection is up).
        supervisor = Supervisor(
            self._url,
            [self._membership, self._subscriber.role(node), self._presence, self._publisher],
            self._health,
            timeout=self._timeout,
            max_backoff=self._max_backoff,
        )
        self._membership.start()
        task_status.started()
        try:
            await supervisor.run()
        finally:
            self._running = False
            self._membership.stop()

    @property
    def presence(self) -> PresenceSync:
        """The rooms' presence across nodes (a `trio_rooms` `PresenceSync`).

        Changes are ordered by Redis per room (see `_presence_scripts`); a node's
        presences are refreshed with its ``ttl`` and removed, as leaves every node
        applies, within ``4 / 3 * ttl`` of the node's death.
        """
        return self._presence

    def publish(self, room: str, payload: bytes) -> None:
        """Queue ``payload`` for the other nodes subscribed to ``room``; never blocks.

        Dropped and counted while the publishing connection is lost, or when
        ``max_queue`` payloads or ``max_queue_bytes`` bytes are waiting.
        """
        self._publisher.publish(self._names.channel(room), payload)

    def subscribe(self, room: str) -> None:
        """Deliver ``room``'s broadcasts from now on (once Redis has the subscription)."""
        self._subscriber.subscribe(self._names.channel(room), room)

    def unsubscribe(self, room: str) -> None:
        """Deliver nothing more of ``room``, from this call on."""
        self._subscriber.unsubscribe(self._names.channel(room))

    def join(self, room: str, session_id: str) -> None:
        """List ``session_id`` in ``room`` on every node (written soon, kept alive)."""
        self._membership.join(room, session_id)

    def leave(self, room: str, session_id: str) -> None:
        """Stop listing ``session_id`` in ``room``."""
        self._membership.leave(room, session_id)

    async def members(self, room: str) -> Sequence[str]:
        """The session ids in ``room`` on every live node, this one's first.

        Raises:
            BackplaneError: the commands connection is lost, or Redis did not answer
                within ``timeout``.
        """
        return await self._membership.members(room)

    async def wait_members_written(self) -> None:
        """Wait until Redis has confirmed every `join` and `leave` called before this.

        ::

            node_b.join("lobby", "bob")
            await node_b.wait_members_written()
            assert "bob" in await node_a.members("lobby")

        From then on `members` on every node lists what they wrote (until an entry's
        node stops refreshing it for ``ttl``). Returns at once when nothing waits to be
        written. While Redis is lost it waits for the reconnect, and for ``run`` if it
        is not running: cancel it (``trio.fail_after``) to bound the wait. A change
        dropped because ``max_queue`` changes were waiting (counted in
        ``statistics().dropped``) is not waited for: a dropped join is written with the
        next refresh, within ``ttl / 3``; a dropped leave expires within ``ttl``.
        """
        await self._membership.wait_written()

    def statistics(self) -> BackplaneStatistics:
        """The current state and counters."""
        return BackplaneStatistics(
            degraded=self._health.degraded,
            published=self._publisher.published,
            received=self._subscriber.received,
            dropped=self._publisher.dropped + self._membership.dropped,
            reconnects=self._health.reconnects,
        )

    async def wait_statistics(
        self, predicate: Callable[[BackplaneStatistics], bool]
    ) -> BackplaneStatistics:
        """Wait until ``predicate(self.statistics())`` is true; return that snapshot.

        ::

            await backplane.wait_statistics(lambda stats: stats.degraded)

        The predicate is checked at once, then each time ``degraded``, ``reconnects``,
        ``published`` or ``dropped`` changes, and once per read of broadcasts from Redis
        for ``received``. Cancel it (``trio.fail_after``) to bound the wait.
        """
        await trio.lowlevel.checkpoint()  # a checkpoint even when it holds at once
        while not predicate(snapshot := self.statistics()):
            await self._statistics_waiters.park()
        return snapshot

    def _changed(self) -> None:
        if self._statistics_waiters:
            self._statistics_waiters.unpark_all()
