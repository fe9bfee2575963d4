"""The single-owner mode with two server processes on one real redis-server.

Every node is `tests.owner_app` (a counter room on `RedisStorage` and `RedisCluster`
leases) in a subprocess; clients are raw WebSocket clients. Until sessions are relayed,
a client of a node that does not own its room is closed with 1013 (try again later).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncGenerator

import coredis
import orjson
import pytest
import trio

from .owner_app import LEASE_TTL, open_owner_node
from .redis_server import RedisServer
from .sockets import CLOSE, PING, RawClient, open_raw

pytestmark = pytest.mark.slow

Nodes = tuple[tuple[trio.Process, int], tuple[trio.Process, int]]

#: Bounds every wait: a few lease TTLs.
PATIENCE = 20.0


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncGenerator[Nodes]:
    """Nodes ``a`` and ``b`` on one fresh Redis: each process and its port."""
    async with (
        open_owner_node(redis_server.url, "a") as node_a,
        open_owner_node(redis_server.url, "b") as node_b,
    ):
        yield node_a, node_b


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncGenerator[coredis.Redis[bytes]]:
    """A plain client, to read what the rooms stored."""
    client = coredis.Redis.from_url(redis_server.url)
    async with client:
        yield client


async def _first(client: RawClient) -> dict[str, object] | int | None:
    """The first message the server sent (skipping pings), or its close code."""
    while (frame := await client.receive_frame()) is not None:
        if frame.opcode == CLOSE:
            return frame.close_code
        if frame.opcode != PING:
            message: dict[str, object] = orjson.loads(frame.payload)
            return message
    return None


async def _receive(client: RawClient) -> dict[str, object]:
    message: dict[str, object] = orjson.loads(await client.receive_text())
    return message


async def test_a_room_asked_for_on_both_nodes_at_once_starts_once_on_one(
    nodes: Nodes, redis: coredis.Redis[bytes]
) -> None:
    """Clients of both nodes asking for a new room at once: one node runs it (on_start
    once, cluster-wide), the other's client is told to try again later (1013)."""
    (_, port_a), (_, port_b) = nodes
    firsts: dict[int, dict[str, object] | int | None] = {}
    with trio.fail_after(PATIENCE):
        async with (
            open_raw(port_a, "/rooms/game/websocket") as on_a,
            open_raw(port_b, "/rooms/game/websocket") as on_b,
        ):

            async def first(port: int, client: RawClient) -> None:
                firsts[port] = await _first(client)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(first, port_a, on_a)
                nursery.start_soon(first, port_b, on_b)
    welcomes = [first for first in firsts.values() if isinstance(first, dict)]
    assert len(welcomes) == 1, firsts
    assert welcomes[0]["starts"] == 1
    assert sorted(firsts.values(), key=lambda first: isinstance(first, dict))[0] == 1013
    assert await redis.get(b"trio_rooms:state:game:starts") == b"1"


async def test_an_alarm_fires_on_the_owner_only_and_once(
    nodes: Nodes, redis: coredis.Redis[bytes]
) -> None:
    """Both nodes' schedulers see the room's due alarm; only the owner runs on_alarm, so
    each alarm set is counted once in storage."""
    (_, port_a), (_, port_b) = nodes
    with trio.fail_after(PATIENCE):
        async with open_raw(port_a, "/rooms/game/websocket") as owner:
            assert (await _receive(owner))["node"] == "a"
            async with open_raw(port_b, "/rooms/game/websocket") as other:
                assert await _first(other) == 1013
            for rings in (1, 2):
                await owner.send_text('{"type": "arm", "delay": 0.3}')
                assert await _receive(owner) == {"type": "rang", "node": "a", "rings": rings}
    assert await redis.get(b"trio_rooms:state:game:rings") == b"2"


async def test_a_node_shut_down_gives_its_rooms_to_the_next_node_at_once(
    nodes: Nodes,
) -> None:
    """SIGTERM on the owner releases its leases as it stops: the other node's next client
    gets the room at once, started again from what the first owner stored."""
    (process_a, port_a), (_, port_b) = nodes
    with trio.fail_after(PATIENCE):
        async with open_raw(port_a, "/rooms/game/websocket") as owner:
            assert (await _receive(owner))["node"] == "a"
            await owner.send_text('{"type": "add"}')
            assert await _receive(owner) == {"type": "counted", "stored": 1, "local": 1}
            process_a.send_signal(signal.SIGTERM)
            assert await _first(owner) == 1001
        await process_a.wait()
        async with open_raw(port_b, "/rooms/game/websocket") as client:
            assert await _receive(client) == {"type": "welcome", "node": "b", "starts": 2}
            await client.send_text('{"type": "add"}')
            assert await _receive(client) == {"type": "counted", "stored": 2, "local": 1}


async def test_the_room_of_a_killed_owner_moves_to_the_other_node_within_the_ttl(
    nodes: Nodes,
) -> None:
    """After kill -9 of the owner, the other node takes the room once its lease lapses,
    within TTL + 1 s, and goes on from every acknowledged write."""
    (process_a, port_a), (_, port_b) = nodes
    with trio.fail_after(PATIENCE):
        async with open_raw(port_a, "/rooms/game/websocket") as owner:
            assert (await _receive(owner))["node"] == "a"
            for stored in (1, 2, 3):
                await owner.send_text('{"type": "add"}')
                assert (await _receive(owner))["stored"] == stored
            process_a.kill()
            await process_a.wait()
        killed = trio.current_time()
        while True:
            async with open_raw(port_b, "/rooms/game/websocket") as client:
                first = await _first(client)
                if first == 1013:
                    continue  # still a's lease: ask again (each try is a round trip)
                took = trio.current_time() - killed
                assert first == {"type": "welcome", "node": "b", "starts": 2}
                await client.send_text('{"type": "add"}')
                assert (await _receive(client))["stored"] == 4
                break
    assert took <= LEASE_TTL + 1.0
