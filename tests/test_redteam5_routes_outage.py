"""Red team 5: route requests relayed to a room's owner while Redis is down.

Two nodes of `tests.attack_app`'s room in this process on one real redis-server that
keeps its data (append-only file): ``a`` owns room ``game``, ``b`` relays its routes.
Redis is killed: what ``b`` is asked meanwhile is refused (503) within a bound, never
left hanging, and never applied later, once Redis is back and the routes relayed again.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import trio_rooms
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .attack_app import AttackRoom, attack_config
from .redis_server import RedisServer, require_redis
from .test_routes import http

pytestmark = pytest.mark.slow

#: Long enough for a restart of Redis and the reconnects after it on a loaded box.
LEASE_TTL = 3.0
PATIENCE = 40.0
#: How long a route of a room with no owner that answers is retried before its 503.
HANDSHAKE_TIMEOUT = 4.0


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server that keeps every write in its append-only file."""
    server = RedisServer(require_redis(), tmp_path, persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@asynccontextmanager
async def _open_node(
    url: str, node: str
) -> AsyncGenerator[tuple[trio_rooms.Rooms[AttackRoom], RedisCluster, int]]:
    """Node ``node`` on Redis ``url``: its rooms, its cluster, its port."""
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            functools.partial(AttackRoom, node=node),
            config=attack_config(handshake_timeout=HANDSHAKE_TIMEOUT),
            storage=RedisStorage(url, timeout=1.0),
            cluster=cluster,
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, cluster, port
        nursery.cancel_scope.cancel()


async def test_routes_relayed_while_redis_is_down_are_refused_and_never_applied_later(
    persistent_redis: RedisServer,
) -> None:
    """With Redis killed, relayed POSTs and GETs of a room owned elsewhere are each
    answered 503 once retried for ``handshake_timeout``, none hangs; once Redis is back
    the routes are relayed again, and no POST refused meanwhile was applied."""
    url = persistent_redis.url
    statuses: list[int] = []
    with trio.fail_after(PATIENCE):
        async with (
            _open_node(url, "a") as (rooms_a, cluster_a, _),
            _open_node(url, "b") as (_, cluster_b, port_b),
        ):
            await rooms_a.get("game")  # a owns it: b relays its routes
            answer = await http(port_b, "POST", "/rooms/game/add")
            assert (answer.status, answer.json()) == (200, {"count": 1})
            await trio.to_thread.run_sync(persistent_redis.kill)
            deadline = trio.current_time() + HANDSHAKE_TIMEOUT + 3.0

            async def ask(method: str, target: str) -> None:
                with trio.fail_at(deadline):
                    statuses.append((await http(port_b, method, target)).status)

            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(ask, "POST", "/rooms/game/add")
                    nursery.start_soon(ask, "GET", "/rooms/game/count")
            assert statuses == [503] * 10, statuses
            await trio.to_thread.run_sync(persistent_redis.start)
            await cluster_a.wait_renewed()
            await cluster_b.wait_renewed()
            answer = await http(port_b, "GET", "/rooms/game/count")
            assert (answer.status, answer.json()) == (200, {"count": 1})
            answer = await http(port_b, "POST", "/rooms/game/add")
            assert (answer.status, answer.json()) == (200, {"count": 2})
