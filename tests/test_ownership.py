"""The single-owner mode with two server processes on one real redis-server.

Every node is `tests.owner_app` (a counter room on `RedisStorage` and `RedisCluster`
leases) in a subprocess; clients are raw WebSocket clients. A client of a node that
does not own its room is relayed to the owner (`tests.test_relay` looks closer).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncGenerator
from typing import cast

import coredis
import orjson
import pytest
import trio

import trio_rooms
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .owner_app import CounterRoom, open_owner_node
from .redis_server import RedisServer
from .redis_witness import events_until, lease_holder, lease_key, open_lease_events
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


async def _session(client: RawClient) -> dict[str, object]:
    """The ``$session`` frame a resumable client gets first."""
    session = (await client.receive_json())["$session"]
    assert isinstance(session, dict)
    return cast("dict[str, object]", session)


async def test_a_room_asked_for_on_both_nodes_at_once_starts_once_on_one(
    nodes: Nodes, redis: coredis.Redis[bytes]
) -> None:
    """Clients of both nodes asking for a new room at once: one node runs it (on_start
    once, cluster-wide) and the other's client is served by it."""
    (_, port_a), (_, port_b) = nodes
    firsts: list[dict[str, object] | int | None] = []
    with trio.fail_after(PATIENCE):
        async with (
            open_raw(port_a, "/rooms/game/websocket") as on_a,
            open_raw(port_b, "/rooms/game/websocket") as on_b,
            trio.open_nursery() as nursery,
        ):

            async def first(client: RawClient) -> None:
                firsts.append(await _first(client))

            nursery.start_soon(first, on_a)
            nursery.start_soon(first, on_b)
    assert len(firsts) == 2
    assert firsts[0] == firsts[1]
    assert isinstance(firsts[0], dict)
    assert firsts[0]["starts"] == 1
    assert await redis.get(b"trio_rooms:state:game:starts") == b"1"


async def test_two_clients_on_each_node_count_to_exactly_400(
    nodes: Nodes, redis: coredis.Redis[bytes]
) -> None:
    """Two clients on each of two nodes add 100 each, through room.storage and the room's
    memory: every read is one of 1..400 exactly once, both ways, and on_start ran once."""
    (_, port_a), (_, port_b) = nodes
    stored: list[int] = []
    local: list[int] = []

    async def count(port: int) -> None:
        async with open_raw(port, "/rooms/game/websocket") as client:
            welcome = await client.receive_json()
            assert welcome["starts"] == 1
            for _ in range(100):
                await client.send_text('{"type": "add"}')
                counted = await client.receive_json()
                assert isinstance(counted["stored"], int)
                assert isinstance(counted["local"], int)
                stored.append(counted["stored"])
                local.append(counted["local"])

    with trio.fail_after(PATIENCE * 3):
        async with open_raw(port_a, "/rooms/game/websocket") as owner:
            assert (await owner.receive_json())["node"] == "a"  # a owns it: b relays
            async with trio.open_nursery() as nursery:
                for port in (port_a, port_a, port_b, port_b):
                    nursery.start_soon(count, port)
    assert sorted(stored) == list(range(1, 401))
    assert sorted(local) == list(range(1, 401))
    assert await redis.get(b"trio_rooms:state:game:count") == b"400"
    assert await redis.get(b"trio_rooms:state:game:starts") == b"1"


async def test_an_alarm_fires_on_the_owner_only_and_once(
    nodes: Nodes, redis: coredis.Redis[bytes]
) -> None:
    """Both nodes' schedulers see the room's due alarm; only the owner runs on_alarm, so
    each alarm set is counted once in storage, and its broadcast reaches relayed clients."""
    (_, port_a), (_, port_b) = nodes
    with trio.fail_after(PATIENCE):
        async with open_raw(port_a, "/rooms/game/websocket") as owner:
            assert (await owner.receive_json())["node"] == "a"
            async with open_raw(port_b, "/rooms/game/websocket") as other:
                assert (await other.receive_json())["node"] == "a"
                for rings in (1, 2):
                    await other.send_text('{"type": "arm", "delay": 0.3}')
                    rang = {"type": "rang", "node": "a", "rings": rings}
                    assert await owner.receive_json() == rang
                    assert await other.receive_json() == rang
    assert await redis.get(b"trio_rooms:state:game:rings") == b"2"


async def test_a_node_shut_down_gives_its_rooms_to_the_next_node_at_once(
    nodes: Nodes,
) -> None:
    """SIGTERM on the owner releases its leases as it stops: the other node's next client
    gets the room at once, started again from what the first owner stored."""
    (process_a, port_a), (_, port_b) = nodes
    with trio.fail_after(PATIENCE):
        async with open_raw(port_a, "/rooms/game/websocket") as owner:
            assert (await owner.receive_json())["node"] == "a"
            await owner.send_text('{"type": "add"}')
            assert await owner.receive_json() == {"type": "counted", "stored": 1, "local": 1}
            process_a.send_signal(signal.SIGTERM)
            assert await _first(owner) == 1001
        await process_a.wait()
        async with open_raw(port_b, "/rooms/game/websocket") as client:
            assert await client.receive_json() == {"type": "welcome", "node": "b", "starts": 2}
            await client.send_text('{"type": "add"}')
            assert await client.receive_json() == {"type": "counted", "stored": 2, "local": 1}


async def test_the_room_of_a_killed_owner_moves_to_the_other_node_once_its_lease_ran_out(
    nodes: Nodes, redis_server: RedisServer, redis: coredis.Redis[bytes]
) -> None:
    """After kill -9 of the owner, the other node takes the room once its lease ran out
    by Redis's own clock (nothing deleted it), with a larger fencing token, and goes on
    from every acknowledged write; a client of the dead node resumes its session there
    with its token (`tests.test_failover` follows the relayed clients, which need not
    reconnect).

    How soon (TTL + 1 s at most) is the failover benchmark's figure, not this test's."""
    (process_a, port_a), (_, port_b) = nodes
    async with open_lease_events(redis_server, redis, "game") as lease_events:
        with trio.fail_after(PATIENCE):
            async with open_raw(port_a, "/rooms/game/websocket?resume=") as owner:
                session = await _session(owner)
                assert (await owner.receive_json())["node"] == "a"
                for stored in (1, 2, 3):
                    await owner.send_text('{"type": "add"}')
                    assert (await owner.receive_json())["stored"] == stored
                assert await events_until(lease_events, b"set") == [b"set"]  # a's
                deposed = lease_holder(await redis.get(lease_key("game")))
                assert deposed[0] == "a"
                process_a.kill()
                await process_a.wait()
                assert await _first(owner) is None  # the socket died with its node
            token = session["token"]
            assert isinstance(token, str)
            # Served (not refused) as soon as b can take the room: its lease lapsed.
            async with open_raw(port_b, f"/rooms/game/websocket?resume={token}") as client:
                resumed = await _session(client)
                assert (resumed["id"], resumed["resumed"]) == (session["id"], True)
                assert await client.receive_json() == {"type": "welcome", "node": "b", "starts": 2}
                await client.send_text('{"type": "add"}')
                assert (await client.receive_json())["stored"] == 4
            events = await events_until(lease_events, b"set")
            assert events[-2:] == [b"expired", b"set"], events
            assert set(events[:-2]) <= {b"expire"}, events  # a's renewals, before
            node, fence = lease_holder(await redis.get(lease_key("game")))
            assert (node, fence > deposed[1]) == ("b", True)


async def test_a_storage_under_another_prefix_than_the_cluster_is_refused(
    redis_server: RedisServer,
) -> None:
    """A `RedisStorage` whose keys the cluster's leases do not fence is a ValueError at
    `open_rooms`, before any room can run; under the same prefix the two open."""
    url = redis_server.url
    with pytest.raises(ValueError, match="same prefix"):
        async with trio_rooms.open_rooms(
            CounterRoom,
            storage=RedisStorage(url, prefix="app:"),
            cluster=RedisCluster(url, prefix="other:"),
        ):
            pytest.fail("opened with fences the storage does not check")
    async with trio_rooms.open_rooms(
        CounterRoom,
        storage=RedisStorage(url, prefix="app:"),
        cluster=RedisCluster(url, prefix="app:"),
    ) as rooms:
        assert rooms.statistics().rooms == 0
