"""The single-owner cluster when nodes restart or lose their own Redis connections.

An owner killed (SIGKILL) and started again under its node id while clients of another
node are relayed to it, and one node's Redis connections killed alone (found by the
client name each node gives them). The nodes are `tests.attack_app`.
"""

from __future__ import annotations

import pytest
import trio

from .attack_app import LEASE_TTL, open_attack_node, serve_attack_rooms
from .redis_server import RedisServer
from .test_cluster_attacks import PATIENCE, Client, counted, joined, settled
from .test_routes import http

pytestmark = pytest.mark.slow


async def _adds(client: Client, count: int) -> list[int]:
    """``count`` adds, each once acknowledged: their counts."""
    counts: list[int] = []
    for _ in range(count):
        await client.send({"type": "add"})
        counts.append(await counted(client))
    return counts


async def test_an_owner_killed_and_started_again_under_its_id_keeps_the_relayed_sessions(
    redis_server: RedisServer,
) -> None:
    """The owner of a room whose clients are relayed from another node, killed (SIGKILL)
    and at once started again under the same node id: the relayed clients stay connected
    and go on adding, on the room's new owner, with no acknowledged add lost; the room's
    ``members()`` and sessions are those clients only (none of the dead process's)."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with serve_attack_rooms(url, "b") as (rooms_b, port_b):
            async with open_attack_node(url, "a") as (process_a, port_a):
                local = await Client.join(port_a)  # a owns the room
                assert local.welcome["node"] == "a"
                relayed = [await Client.join(port_b, "resume=") for _ in range(2)]
                assert all(client.welcome["node"] == "a" for client in relayed)
                acknowledged = [count for client in relayed for count in await _adds(client, 5)]
                await relayed[1].send({"type": "add"})  # in flight: applied once or not at all
                process_a.kill()
                await process_a.wait()
            await local.aclose()
            async with joined(relayed), open_attack_node(url, "a") as (_, port_a):
                for client in relayed:
                    acknowledged += await _adds(client, 3)
                tally = await relayed[0].tally()
                ids = sorted(client.id for client in relayed)
                assert tally["sessions"] == ids
                assert tally["members"] == ids
                stored = (await http(port_a, "GET", "/rooms/game/count")).json()["count"]
                assert len(set(acknowledged)) == len(acknowledged) == 16, acknowledged
                assert stored in {16, 17}
                assert set(acknowledged) <= set(range(1, stored + 1))
                assert rooms_b.statistics().errors == 0
            await settled(rooms_b)


def _node_client_ids(redis_server: RedisServer, node: str) -> set[str]:
    """The ids of node ``node``'s Redis connections (its leases' and its relays')."""
    listed = redis_server.command("CLIENT", "LIST").decode()
    names = {f"name=trio_rooms.leases.{node}", f"name=trio_rooms.relays.{node}"}
    return {
        line.split()[0].removeprefix("id=")
        for line in listed.splitlines()
        if names & set(line.split())
    }


@pytest.mark.parametrize("killed", ["owner", "relaying"])
async def test_one_nodes_redis_connections_killed_alone_lose_no_acknowledged_add(
    redis_server: RedisServer, killed: str
) -> None:
    """CLIENT KILL of only one node's connections (found by their names), the owner's or
    the relaying node's, again and again with an add in flight from a relayed client:
    the other node's connections are left alone, every acknowledged add is stored, each
    count is acknowledged at most once, and the node connects again under its names."""
    url = redis_server.url
    kills, acknowledged = 4, list[int]()
    node = "a" if killed == "owner" else "b"
    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a") as (_, port_a),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
        ):
            owner = await Client.join(port_a)
            async with joined([owner]):
                client = await Client.join(port_b, "resume=")
                assert client.welcome["node"] == "a"
                other = "b" if node == "a" else "a"
                spared = _node_client_ids(redis_server, other)
                assert len(spared) == 3  # its leases', its relays' reader and writer
                for kill in range(kills):
                    # The adds went through its relays: they are up again (its leases'
                    # connection may still be waiting to connect again).
                    ids = _node_client_ids(redis_server, node)
                    assert ids, kill
                    try:
                        acknowledged += await _adds(client, 3)
                        await client.send({"type": "add"})  # in flight when cut
                        for client_id in ids:
                            said = redis_server.command("CLIENT", "KILL", "ID", client_id)
                            assert said == b":1\r\n", said
                        acknowledged.append(await counted(client))
                    except AssertionError:
                        # Closed (its room restarted on a failed write): resume and go on.
                        await client.aclose()
                        client = await Client.join(port_b, f"resume={client.token}")
                        assert client.resumed, kill
                acknowledged += await _adds(client, 3)
                await client.aclose()
                assert _node_client_ids(redis_server, other) == spared
            stored = (await http(port_a, "GET", "/rooms/game/count")).json()["count"]
            await settled(rooms_b)
    assert len(acknowledged) == len(set(acknowledged)), acknowledged
    assert acknowledged == sorted(acknowledged)
    assert max(acknowledged) <= stored <= len(acknowledged) + kills


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_routes_relayed_to_an_owner_that_dies_answer_within_the_lease_ttl(
    redis_server: RedisServer, method: str
) -> None:
    """Route requests relayed to an owner killed (SIGKILL) just before: each is answered
    (by the room's next owner) or refused with 503 within the lease TTL and a second
    of the kill, never left hanging; and the room is served again afterwards."""
    url = redis_server.url
    target = "/rooms/game/add" if method == "POST" else "/rooms/game/count"
    statuses: list[int] = []
    with trio.fail_after(PATIENCE):
        async with serve_attack_rooms(url, "b") as (rooms_b, port_b):
            async with open_attack_node(url, "a") as (process_a, port_a):
                answer = await http(port_a, "POST", "/rooms/game/add")  # a owns the room
                assert answer.status == 200, answer.body
                process_a.kill()
                await process_a.wait()
            deadline = trio.current_time() + LEASE_TTL + 1.0

            async def ask() -> None:
                with trio.fail_at(deadline):
                    statuses.append((await http(port_b, method, target)).status)

            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(ask)
            assert len(statuses) == 10
            assert set(statuses) <= {200, 503}, statuses
            answer = await http(port_b, "GET", "/rooms/game/count")
            assert answer.status == 200, answer.body
            assert answer.json()["count"] >= 1
            assert rooms_b.statistics().owned_rooms == 1
