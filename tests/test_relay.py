"""Relayed sessions: a client of a node that does not own its room, served by the owner.

Two nodes of `tests.owner_app` in this process (so the owner's rooms can be looked
at), on one real redis-server; node ``a`` owns room ``game`` (its client comes first),
node ``b`` relays its clients to ``a``. Clients are raw WebSocket clients.
"""

from __future__ import annotations

import signal

import pytest
import trio

import trio_rooms

from .owner_app import LEASE_TTL, CounterRoom, open_owner_node, serve_owner_rooms
from .redis_server import EVERY_URL, RedisServer
from .redis_witness import silent_for_ms
from .sockets import CLOSE, PING, PONG, TEXT, RawClient, client_frame, close_payload, open_raw

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
#: Bounds every wait: a few lease TTLs.
PATIENCE = 20.0
#: How long the owner may take to notice that a client's node died: a peer silent for
#: the lease TTL is found at the next beat, a third of it later.
DEAD_BOUND = LEASE_TTL * 4 / 3


async def _local(client: RawClient) -> int:
    """The in-memory counter of the next `Counted` reply."""
    local = (await client.receive_json())["local"]
    assert isinstance(local, int)
    return local


async def _owner_room(rooms: trio_rooms.Rooms[CounterRoom], client: RawClient) -> CounterRoom:
    """The owner's room ``game``, once ``client`` (of the owner) has been welcomed."""
    assert await client.receive_json() == {"type": "welcome", "node": "a", "starts": 1}
    return await rooms.get("game")


async def test_a_relayed_session_lives_on_the_owner(redis_server: RedisServer) -> None:
    """A client of node b is a session of the owner's room: in its `sessions` and
    `members()`, counted in the owner's statistics, while b runs no room at all."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a") as (rooms_a, port_a),
            serve_owner_rooms(url, "b") as (rooms_b, port_b),
            open_raw(port_a, GAME) as on_a,
            open_raw(port_b, GAME) as on_b,
        ):
            room = await _owner_room(rooms_a, on_a)
            assert await on_b.receive_json() == {"type": "welcome", "node": "a", "starts": 1}
            await on_b.send_text('{"type": "who"}')
            members = await on_b.receive_json()
            assert members["members"] == members["sessions"] == sorted(room.sessions)
            assert len(room.sessions) == 2
            on_a_stats, on_b_stats = rooms_a.statistics(), rooms_b.statistics()
            assert (on_a_stats.rooms, on_a_stats.sessions, on_a_stats.connections) == (1, 2, 1)
            assert (on_b_stats.rooms, on_b_stats.sessions, on_b_stats.connections) == (0, 0, 1)


async def test_close_codes_and_pings_cross_the_relay(redis_server: RedisServer) -> None:
    """The owner's close code reaches a relayed client, a relayed client's close code
    reaches the owner's on_close and is echoed back, and its node answers its pings."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a") as (rooms_a, port_a),
            serve_owner_rooms(url, "b") as (_, port_b),
            open_raw(port_a, GAME) as on_a,
        ):
            room = await _owner_room(rooms_a, on_a)
            async with open_raw(port_b, GAME) as on_b:
                assert (await on_b.receive_json())["node"] == "a"
                await on_b.send(client_frame(PING, b"are you there"))
                pong = await on_b.receive_frame()
                assert pong == (True, PONG, b"are you there")
                await on_b.send_text('{"type": "leave", "code": 4000}')
                assert await on_b.close_code() == 4000
            async with open_raw(port_b, GAME) as on_b:
                assert (await on_b.receive_json())["node"] == "a"
                await on_b.send(client_frame(CLOSE, close_payload(4321, "done")))
                assert await on_b.close_code() == 4321
            await rooms_a.wait_statistics(lambda stats: sum(stats.closes.values()) == 2)
            assert room.closes == [4000, 4321]


@EVERY_URL
async def test_messages_of_relayed_and_local_clients_are_handled_in_order(
    redis_server: RedisServer,
) -> None:
    """A relayed client's burst (more than its credit window) is handled in order, every
    reply coming back in order, while a client of the owner interleaves its own."""
    url = redis_server.url
    burst = 200  # over inbound_max_messages (32): the credit must come back several times
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a") as (rooms_a, port_a),
            serve_owner_rooms(url, "b") as (_, port_b),
            open_raw(port_a, GAME) as on_a,
            open_raw(port_b, GAME) as on_b,
        ):
            await _owner_room(rooms_a, on_a)
            assert (await on_b.receive_json())["node"] == "a"
            await on_b.send(b"".join(client_frame(TEXT, b'{"type": "add"}') for _ in range(burst)))
            await on_a.send_text('{"type": "add"}')
            seen = [await _local(on_b) for _ in range(burst)]
            mine = await _local(on_a)
    assert seen == sorted(seen)
    assert sorted([*seen, mine]) == list(range(1, burst + 2))


async def test_a_slow_relayed_client_is_closed_with_1008_by_its_own_node(
    redis_server: RedisServer,
) -> None:
    """A relayed client that reads nothing fills its queue on its own node, which closes
    it with 1008 (slow consumer) and ends its session on the owner, which counts it as a
    slow consumer whose one message was dropped, as it counts a local one."""
    url = redis_server.url

    def queues(size: int) -> trio_rooms.RoomsConfig:
        return trio_rooms.RoomsConfig(
            rate_limit=None, max_connections_per_address=10_000, outbound_max_bytes=size
        )

    # The owner's queue takes every flood (its handler never yields between them).
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a", queues(64 * 1024 * 1024)) as (rooms_a, port_a),
            serve_owner_rooms(url, "b", queues(256 * 1024)) as (_, port_b),
            open_raw(port_a, GAME) as on_a,
        ):
            room = await _owner_room(rooms_a, on_a)
            async with open_raw(port_b, GAME, rcvbuf=4096) as on_b:
                for _ in range(20):  # 10 MiB in all, 512 KiB per message handled
                    await on_b.send_text('{"type": "flood", "count": 16, "size": 32768}')
                assert await on_b.close_code() == 1008
            await rooms_a.wait_statistics(lambda stats: stats.closes.get(1008) == 1)
            assert room.closes == [1008]
            stats = rooms_a.statistics()
            assert (stats.slow_consumers, stats.dropped) == (1, 1)
            assert stats.by_room["game"].slow_consumers == 1


async def test_the_relays_of_a_killed_client_node_end_on_the_owner_within_the_bound(
    redis_server: RedisServer,
) -> None:
    """After kill -9 of the node a relayed client sits on, its session on the owner ends
    (1006) once that node has been silent for the lease TTL, at the next beat."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with serve_owner_rooms(url, "a") as (rooms_a, port_a), open_raw(port_a, GAME) as on_a:
            room = await _owner_room(rooms_a, on_a)
            async with (
                open_owner_node(url, "b") as (process_b, port_b),
                open_raw(port_b, GAME) as on_b,
            ):
                assert (await on_b.receive_json())["node"] == "a"
                process_b.send_signal(signal.SIGKILL)
                await process_b.wait()
            await rooms_a.wait_statistics(lambda stats: stats.closes.get(1006) == 1)
            assert room.closes == [1006]
            # For b's silence: b's last entry, by Redis's clock, was dead_after before. How
            # soon after (DEAD_BOUND at most) is a benchmark's figure, not this test's.
            assert await silent_for_ms(url, "a", "b") >= LEASE_TTL * 1000


def _kill_relay_connections(redis_server: RedisServer) -> int:
    """Make Redis drop every node's relay connections (CLIENT KILL): how many it dropped."""
    listed = redis_server.command("CLIENT", "LIST").decode()
    ids = [
        line.split()[0].removeprefix("id=")
        for line in listed.splitlines()
        if " name=trio_rooms.relays." in line
    ]
    for client_id in ids:
        assert redis_server.command("CLIENT", "KILL", "ID", client_id) == b":1\r\n"
    return len(ids)


async def test_relays_dropped_by_redis_come_back_and_the_client_goes_on(
    redis_server: RedisServer,
) -> None:
    """When Redis drops both nodes' relay connections, the links connect again and move
    the relayed session to the same owner without its client reconnecting: the room
    welcomes it again there, and its next message is handled there, once."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a") as (rooms_a, port_a),
            serve_owner_rooms(url, "b") as (_, port_b),
            open_raw(port_a, GAME) as on_a,
            open_raw(port_b, GAME) as on_b,
        ):
            room = await _owner_room(rooms_a, on_a)
            welcome = {"type": "welcome", "node": "a", "starts": 1}
            assert await on_b.receive_json() == welcome
            await on_b.send_text('{"type": "add"}')
            assert await _local(on_b) == 1
            assert _kill_relay_connections(redis_server) == 4  # a reader and a writer each
            assert await on_b.receive_json() == welcome  # its session, moved: on_connect again
            await on_b.send_text('{"type": "add"}')
            assert await on_b.receive_json() == {"type": "counted", "stored": 2, "local": 2}
            await on_b.send_text('{"type": "who"}')
            members = await on_b.receive_json()
            assert members["sessions"] == sorted(room.sessions)
            assert len(room.sessions) == 2
            assert room.starts == 1


async def test_a_flood_larger_than_a_stream_entry_reaches_a_relayed_client_whole(
    redis_server: RedisServer,
) -> None:
    """2 MiB of frames sent in one turn of the owner's handler (one stream entry, four
    times the size the link gathers entries up to) reach the relayed client every one,
    then its next reply."""
    url = redis_server.url
    config = trio_rooms.RoomsConfig(outbound_max_bytes=8 * 1024 * 1024)
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a", config) as (rooms_a, port_a),
            serve_owner_rooms(url, "b", config) as (_, port_b),
            open_raw(port_a, GAME) as on_a,
            open_raw(port_b, GAME) as on_b,
        ):
            await _owner_room(rooms_a, on_a)
            assert (await on_b.receive_json())["node"] == "a"
            await on_b.send_text('{"type": "flood", "count": 64, "size": 32768}')
            await on_b.send_text('{"type": "add"}')
            blobs = [await on_b.receive_json() for _ in range(64)]
            assert await _local(on_b) == 1
    assert blobs == [{"type": "blob", "data": "x" * 32768}] * 64
