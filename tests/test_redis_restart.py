"""The single-owner mode across a Redis outage: a real redis-server paused, or killed and
started again on its port, with (append-only file) or without persistence.

The nodes are `tests.owner_app` rooms in this process, each served on a free port, so
that a test can wait for their lease renewals; clients are raw WebSocket clients, which
see every frame the server writes, close frames too.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import cast

import coredis
import orjson
import pytest
import trio

import trio_rooms
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .owner_app import CounterRoom
from .redis_server import RedisServer, require_redis
from .sockets import CLOSE, PING, TEXT, RawClient, open_raw

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
#: Long enough for a restart of Redis and the reconnects after it on a loaded box.
LEASE_TTL = 3.0
#: Bounds every test: a few lease TTLs.
PATIENCE = 40.0

Message = dict[str, object]


@pytest.fixture
def persistent_redis(tmp_path: Path) -> RedisServer:
    """A redis-server that keeps every write in its append-only file, started by the test."""
    server = RedisServer(require_redis(), tmp_path, persistent=True)
    server.start()
    return server


@asynccontextmanager
async def _open_node(
    url: str, node: str
) -> AsyncGenerator[tuple[trio_rooms.Rooms[CounterRoom], RedisCluster, int]]:
    """Node ``node`` of `CounterRoom` on Redis ``url``: its rooms, its cluster, its port."""
    config = trio_rooms.RoomsConfig(rate_limit=None, max_connections_per_address=10_000)
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            functools.partial(CounterRoom, node=node),
            config=config,
            storage=RedisStorage(url, timeout=1.0),
            cluster=cluster,
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, cluster, port
        nursery.cancel_scope.cancel()


async def _get(url: str, key: str) -> bytes | None:
    async with coredis.Redis.from_url(url) as redis:
        return await redis.get(key.encode())


async def _token(url: str, room: str = "game") -> tuple[str, int]:
    """The node holding ``room``'s lease in Redis, and its fencing token."""
    lease = await _get(url, f"trio_rooms:lease:{room}")
    assert lease is not None
    node, _, token = lease.decode().rpartition(":")
    return node, int(token)


async def _fence(url: str, room: str = "game") -> int:
    fence = await _get(url, f"trio_rooms:fence:{room}")
    assert fence is not None
    return int(fence)


async def _text(client: RawClient) -> Message:
    return cast("Message", orjson.loads(await client.receive_text()))


async def _echo(client: RawClient) -> None:
    """One round trip that writes nothing: a `Flood` of one `Blob`."""
    await client.send_text('{"type": "flood", "count": 1, "size": 3}')
    assert await _text(client) == {"type": "blob", "data": "xxx"}


async def _add(client: RawClient) -> int:
    await client.send_text('{"type": "add"}')
    counted = await _text(client)
    assert counted["type"] == "counted"
    return cast("int", counted["stored"])


async def _until_welcome(client: RawClient) -> list[Message | int]:
    """What the client gets up to its next welcome, that included (pings left out)."""
    frames: list[Message | int] = []
    while (frame := await client.receive_frame()) is not None:
        if frame.opcode == CLOSE:
            frames.append(frame.close_code)
            return frames
        if frame.opcode == TEXT:
            message = cast("Message", orjson.loads(frame.payload))
            frames.append(message)
            if message.get("type") == "welcome":
                return frames
        else:
            assert frame.opcode == PING, frame
    return frames


async def _restart(server: RedisServer) -> None:
    """Kill the server and start it again on its port (off the event loop: it blocks)."""
    await trio.to_thread.run_sync(server.kill)
    await trio.to_thread.run_sync(server.start)


async def test_a_room_with_only_local_clients_is_served_through_an_outage(
    redis_server: RedisServer,
) -> None:
    """With Redis paused for twice the lease TTL, the owner keeps answering its room's
    client and, once Redis answers, still owns the room with the same fencing token: no
    second on_start, and its writes land."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with _open_node(url, "a") as (_, cluster, port), open_raw(port, GAME) as client:
            assert await _text(client) == {"type": "welcome", "node": "a", "starts": 1}
            _, token = await _token(url)
            redis_server.pause()
            try:
                paused = trio.current_time()
                while trio.current_time() < paused + 2 * LEASE_TTL:
                    await _echo(client)
            finally:
                redis_server.resume()
            await cluster.wait_renewed()
            assert await _token(url) == ("a", token)
            assert await _fence(url) == token
            await _echo(client)
            assert await _add(client) == 1
            async with open_raw(port, GAME) as later:
                assert await _text(later) == {"type": "welcome", "node": "a", "starts": 1}
    assert await _get(url, "trio_rooms:state:game:count") == b"1"


async def test_after_a_restart_without_persistence_the_owner_keeps_its_room_and_fence(
    redis_server: RedisServer,
) -> None:
    """Redis restarted empty: the owner takes its lease back with its token and raises the
    forgotten fence to it, so the other node cannot take the room (its clients are relayed
    to the owner) and the owner's writes succeed, fenced with that token."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            _open_node(url, "a") as (_, cluster_a, port_a),
            _open_node(url, "b") as (_, cluster_b, port_b),
            open_raw(port_a, GAME) as on_a,
        ):
            assert await _text(on_a) == {"type": "welcome", "node": "a", "starts": 1}
            assert await _add(on_a) == 1
            _, token = await _token(url)
            await _restart(redis_server)
            assert await _get(url, "trio_rooms:state:game:count") is None  # it forgot
            await cluster_a.wait_renewed()
            await cluster_b.wait_renewed()
            assert await _token(url) == ("a", token)
            assert await _fence(url) == token
            assert await cluster_b.acquire("game") is None
            async with open_raw(port_b, GAME) as on_b:
                assert await _text(on_b) == {"type": "welcome", "node": "a", "starts": 1}
                # The room reads its own writes from memory: it counts on from 1, and its
                # writes land in the Redis that forgot them.
                assert await _add(on_a) == 2
                assert await _add(on_b) == 3
            await _echo(on_a)
            assert await _fence(url) == token
            assert await _get(url, "trio_rooms:state:game:count") == b"3"


async def test_relayed_sessions_come_back_after_a_restart_within_the_lease_ttl(
    persistent_redis: RedisServer,
) -> None:
    """Redis killed and started again at once (with its data): the session relayed from
    the other node resumes on the owner, which kept the room, without its client
    reconnecting or being closed; the owner's own client is never interrupted."""
    url = persistent_redis.url
    try:
        with trio.fail_after(PATIENCE):
            async with (
                _open_node(url, "a") as (_, _, port_a),
                _open_node(url, "b") as (_, _, port_b),
                open_raw(port_a, GAME) as on_a,
            ):
                assert await _text(on_a) == {"type": "welcome", "node": "a", "starts": 1}
                async with open_raw(port_b, GAME + "?resume=&seen=0") as relayed:
                    first = await _until_welcome(relayed)
                    session = cast("Message", cast("Message", first[0])["$session"])
                    assert first[-1] == {"type": "welcome", "node": "a", "starts": 1}
                    assert await _add(relayed) == 1
                    await _restart(persistent_redis)
                    again = await _until_welcome(relayed)
                    assert again[-1] == {"type": "welcome", "node": "a", "starts": 1}
                    moved = cast("Message", cast("Message", again[0])["$session"])
                    assert (moved["id"], moved["resumed"]) == (session["id"], True)
                    assert await _add(relayed) == 2
                await _echo(on_a)
                assert await _add(on_a) == 3
    finally:
        persistent_redis.kill()


async def test_relayed_sessions_are_closed_with_1012_when_redis_stays_down(
    redis_server: RedisServer,
) -> None:
    """Redis down past the lease TTL: the relayed client is closed with 1012 (to resume by
    itself) while the owner's own client is still served, and once Redis is back the
    owner still has the room and relays the other node's clients again."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            _open_node(url, "a") as (_, cluster_a, port_a),
            _open_node(url, "b") as (_, cluster_b, port_b),
            open_raw(port_a, GAME) as on_a,
            open_raw(port_b, GAME) as relayed,
        ):
            assert await _text(on_a) == {"type": "welcome", "node": "a", "starts": 1}
            assert await _text(relayed) == {"type": "welcome", "node": "a", "starts": 1}
            await trio.to_thread.run_sync(redis_server.kill)
            lost = trio.current_time()
            assert await relayed.close_code() == 1012
            assert trio.current_time() - lost >= LEASE_TTL * 0.9
            await _echo(on_a)
            await trio.to_thread.run_sync(redis_server.start)
            await cluster_a.wait_renewed()
            await cluster_b.wait_renewed()
            async with open_raw(port_b, GAME) as back:
                assert await _text(back) == {"type": "welcome", "node": "a", "starts": 1}
                await _echo(back)
            await _echo(on_a)


async def test_fifty_rooms_on_two_nodes_have_one_owner_each_after_a_restart(
    redis_server: RedisServer,
) -> None:
    """Fifty rooms owned half by each node, Redis restarted empty: each owner keeps its
    rooms, and the other node's new client of every room is relayed to that owner."""
    url = redis_server.url
    names = [f"room{index}" for index in range(50)]
    with trio.fail_after(PATIENCE * 2):
        async with (
            _open_node(url, "a") as (rooms_a, cluster_a, port_a),
            _open_node(url, "b") as (rooms_b, cluster_b, port_b),
            AsyncExitStack() as stack,
        ):
            ports = {"a": port_a, "b": port_b}
            owners = {name: "ab"[index % 2] for index, name in enumerate(names)}
            clients: dict[str, RawClient] = {}

            async def connect(name: str) -> None:
                client = await stack.enter_async_context(
                    open_raw(ports[owners[name]], f"/rooms/{name}/websocket")
                )
                welcome = await _text(client)
                assert welcome == {"type": "welcome", "node": owners[name], "starts": 1}
                clients[name] = client

            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(connect, name)
            await _restart(redis_server)
            await cluster_a.wait_renewed()
            await cluster_b.wait_renewed()

            async def relayed(name: str) -> None:
                other = "b" if owners[name] == "a" else "a"
                async with open_raw(ports[other], f"/rooms/{name}/websocket") as client:
                    welcome = await _text(client)
                    assert welcome == {"type": "welcome", "node": owners[name], "starts": 1}
                await _echo(clients[name])

            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(relayed, name)
            for name in names:
                assert (await _token(url, name))[0] == owners[name]
            assert rooms_a.statistics().owned_rooms == 25
            assert rooms_b.statistics().owned_rooms == 25
