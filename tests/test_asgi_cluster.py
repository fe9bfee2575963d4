"""`asgi_app(..., cluster=...)`: the single-owner mode behind hypercorn, and its CLI workers.

Each of hypercorn's ``--workers`` imports the app module, so each is a node of its own
(`tests.asgi_owner_app`); with a cluster a room then lives once across the workers,
whichever one a client's connection reaches. On one real redis-server.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import coredis
import hypercorn.trio
import pytest
import trio

import trio_rooms
from trio_rooms._resp import open_resp
from trio_rooms.backplane.redis import RedisBackplane, RedisCluster
from trio_rooms.transports.asgi import ASGIApp

from .asgi_owner_app import counter_app
from .redis_server import RedisServer
from .sockets import open_raw

pytestmark = pytest.mark.slow

#: Bounds every wait: a few lease TTLs, and the workers' start.
PATIENCE = 30.0


async def _add(port: int, times: int, stored: list[int], local: list[int]) -> str:
    """A client of room ``game`` adding ``times``: the node it was told runs the room."""
    async with open_raw(port, "/rooms/game/websocket") as client:
        welcome = await client.receive_json()
        for _ in range(times):
            await client.send_text('{"type": "add"}')
            counted = await client.receive_json()
            assert isinstance(counted["stored"], int)
            assert isinstance(counted["local"], int)
            stored.append(counted["stored"])
            local.append(counted["local"])
    node = welcome["node"]
    assert isinstance(node, str)
    return node


@asynccontextmanager
async def _served(app: ASGIApp) -> AsyncGenerator[int]:
    """``app`` served by hypercorn in this process (its lifespan too): yields its port."""
    config = trio_rooms.hypercorn_config(trio_rooms.RoomsConfig(), "127.0.0.1:0")
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(hypercorn.trio.serve, shutdown_trigger=stop.wait)
        binds: list[str] = await nursery.start(serve, app, config)
        yield int(binds[0].rpartition(":")[2])
        stop.set()


async def test_two_apps_with_a_cluster_count_to_exactly_400(redis_server: RedisServer) -> None:
    """Two `asgi_app`s given clusters on one Redis (two hypercorn workers, in one process
    here): two clients on each add 100, and every read is one of 1..400 exactly once."""
    stored: list[int] = []
    local: list[int] = []
    with trio.fail_after(PATIENCE * 2):
        async with (
            _served(counter_app(redis_server.url, "a")) as port_a,
            _served(counter_app(redis_server.url, "b")) as port_b,
        ):
            assert await _add(port_a, 0, stored, local) == "a"  # a owns it: b relays
            nodes: list[str] = []

            async def add(port: int) -> None:
                nodes.append(await _add(port, 100, stored, local))

            async with trio.open_nursery() as nursery:
                for port in (port_a, port_a, port_b, port_b):
                    nursery.start_soon(add, port)
    assert nodes == ["a"] * 4
    assert sorted(stored) == list(range(1, 401))
    assert sorted(local) == list(range(1, 401))


def test_an_app_given_a_backplane_and_a_cluster_is_refused_as_it_is_made() -> None:
    """The CLI imports the app: the mistake is an error there, not at the first request."""
    with pytest.raises(ValueError, match="backplane or a cluster"):
        trio_rooms.asgi_app(
            trio_rooms.Room,
            backplane=RedisBackplane("redis://127.0.0.1:1"),
            cluster=RedisCluster("redis://127.0.0.1:1"),
        )


async def _nodes_joining(url: str, count: int, started: Callable[[], None]) -> set[str]:
    """The ids of the first ``count`` nodes whose record Redis sets after ``started()``."""
    pattern = b"__keyspace@0__:trio_rooms:node:*"
    async with open_resp(url, timeout=5.0, name="tests.asgi_cluster") as events:
        await events.call(b"PSUBSCRIBE", pattern)
        started()
        nodes: set[str] = set()
        while len(nodes) < count:
            message = await events.reply()
            assert isinstance(message, list), message
            channel = message[2]
            assert isinstance(channel, bytes), message
            nodes.add(channel.rpartition(b":")[2].decode())
        return nodes


async def test_the_hypercorn_cli_with_two_workers_runs_one_room(
    redis_server: RedisServer,
) -> None:
    """``hypercorn --workers 2`` on `asgi_app(..., cluster=...)`: both workers join as
    nodes; six clients, wherever the kernel hands their connections, count exactly and
    are all told of the same node; SIGTERM then stops every worker."""
    redis = coredis.Redis.from_url(redis_server.url)
    async with redis:
        await redis.config_set({"notify-keyspace-events": "K$"})
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port: int = listener.getsockname()[1]
    command = [
        *(sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "2"),
        *("--bind", f"fd://{listener.fileno()}", "--graceful-timeout", "1"),
        "tests.asgi_owner_app:app",
    ]
    env = {**os.environ, "TRIO_ROOMS_TEST_REDIS": redis_server.url}
    processes: list[trio.Process] = []

    async def start() -> None:
        processes.append(
            await trio.lowlevel.open_process(
                command,
                cwd=Path(__file__).parent.parent,
                env=env,
                pass_fds=(listener.fileno(),),
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # its workers too are killed on a failure
            )
        )

    stored: list[int] = []
    local: list[int] = []
    try:
        with trio.fail_after(PATIENCE * 2):
            async with trio.open_nursery() as nursery:
                joined = await _nodes_joining(
                    redis_server.url, 2, lambda: nursery.start_soon(start)
                )
            listener.close()  # the workers hold their own copies
            nodes: list[str] = []

            async def add() -> None:
                nodes.append(await _add(port, 50, stored, local))

            async with trio.open_nursery() as nursery:
                for _ in range(6):
                    nursery.start_soon(add)
            (process,) = processes
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        listener.close()
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with trio.CancelScope(shield=True):
                await process.wait()
    assert len(joined) == 2
    assert len(set(nodes)) == 1
    assert nodes[0] in joined
    assert sorted(stored) == list(range(1, 301))
    assert sorted(local) == list(range(1, 301))
