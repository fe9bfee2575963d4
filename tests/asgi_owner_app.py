"""`tests.owner_app`'s counter room as the hypercorn CLI's app, one cluster node per worker.

``hypercorn --worker-class trio --workers 2 tests.asgi_owner_app:app`` with the Redis
URL in ``TRIO_ROOMS_TEST_REDIS``: each worker imports this module, so each makes its own
`RedisCluster` (a random node id) and is a node of its own. `counter_app` makes the same
app in-process, for tests that run several on one trio loop.
"""

from __future__ import annotations

import functools
import os

import trio_rooms
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage
from trio_rooms.transports.asgi import ASGIApp

from .owner_app import LEASE_TTL, CounterRoom


def counter_app(url: str, node: str | None = None) -> ASGIApp:
    """The counter rooms on the storage and leases in the Redis at ``url``."""
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    # The tests send as fast as they can and run many clients from one address.
    config = trio_rooms.RoomsConfig(rate_limit=None, max_connections_per_address=10_000)
    return trio_rooms.asgi_app(
        functools.partial(CounterRoom, node=cluster.node_id),
        config=config,
        storage=RedisStorage(url),
        cluster=cluster,
    )


# Only when hypercorn's CLI imports it: the in-process tests import `counter_app`.
if "TRIO_ROOMS_TEST_REDIS" in os.environ:
    app = counter_app(os.environ["TRIO_ROOMS_TEST_REDIS"])
