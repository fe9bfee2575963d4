"""`RedisCluster`: the single-owner mode on Redis (private until its relay lands).

A room runs only on the node holding its lease (`Leases`); the room's writes carry the
lease's fencing token, which `RedisStorage` checks against the room's fence. Pass it as
``open_rooms(..., _cluster=RedisCluster(url))`` with a `RedisStorage` on the same Redis
and prefix (the fence key is shared). Clients of a room owned by another node are not
relayed yet: their connection is closed with 1013.
"""

from __future__ import annotations

from typing import NoReturn, final

import trio

from ._leases import Lease, Leases

__all__ = ["RedisCluster"]


@final
class _Owned:
    """A `Lease` as the core sees it: its token, its end, and its release."""

    __slots__ = ("_lease", "_leases")

    def __init__(self, leases: Leases, lease: Lease) -> None:
        self._leases = leases
        self._lease = lease

    @property
    def token(self) -> int:
        return self._lease.token

    @property
    def ended(self) -> trio.Event:
        return self._lease.ended

    async def release(self) -> None:
        await self._leases.release(self._lease)


@final
class RedisCluster:
    """Single ownership of rooms through leases in the Redis at ``url``.

    Args:
        url: Redis's address (the storage's).
        node_id: This node's id in its leases (random by default).
        prefix: Starts every key: the storage's prefix.
        lease_ttl: Seconds a lease outlives its owner's last renewal: how long a room
            of a node that died stays unavailable.
        timeout: Bound on each round trip to Redis.
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        prefix: str = "trio_rooms:",
        lease_ttl: float = 5.0,
        timeout: float = 1.0,
    ) -> None:
        self.leases = Leases(url, node_id=node_id, prefix=prefix, ttl=lease_ttl, timeout=timeout)

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Keep this node's leases alive until cancelled; started once connected."""
        await self.leases.run(task_status=task_status)

    async def acquire(self, room: str) -> _Owned | None:
        """Take ``room``'s lease, or None if another node holds it."""
        lease = await self.leases.acquire(room)
        return None if lease is None else _Owned(self.leases, lease)
