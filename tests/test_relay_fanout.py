"""Relayed fan-out: a broadcast costs one relay stream entry per node, in each session's order.

Two nodes of `tests.fanout_app` in this process on one real redis-server; node ``a``
owns the room (its client comes first), node ``b`` relays its clients to ``a``. What
``a`` wrote to ``b``'s relay stream is read back from Redis.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import coredis
import pytest
import trio

import trio_rooms
from trio_rooms._core.outbound import TEXT, Frame
from trio_rooms.backplane._relay_entries import FRAMES, Entry, decode_all
from trio_rooms.backplane._relay_frames import grouped
from trio_rooms.backplane._relay_link import RelayLink

from .fanout_app import open_fanout_node
from .redis_server import RedisServer
from .sockets import open_raw

pytestmark = pytest.mark.slow

FAN = "/rooms/fan/websocket"
PATIENCE = 30.0


async def _last_id(redis: coredis.Redis[bytes], node: str) -> bytes:
    """The id of the last entry of ``node``'s relay stream."""
    entries = await redis.xrevrange(f"trio_rooms:relay:{node}", count=1)
    assert entries
    identifier = entries[0].identifier
    assert isinstance(identifier, bytes)
    return identifier


async def _frames_entries(
    redis: coredis.Redis[bytes], node: str, after: bytes
) -> list[tuple[int, int]]:
    """The FRAMES entries added to ``node``'s stream after ``after``: (relays, frames) each."""
    found: list[tuple[int, int]] = []
    for entry in await redis.xrange(f"trio_rooms:relay:{node}", start=b"(" + after):
        data = entry.field_values.get(b"e")
        if not isinstance(data, bytes) or not data:
            continue  # the empty entry a node adds to its stream when it connects
        for decoded in decode_all(data):
            assert isinstance(decoded, Entry)
            if decoded.kind == FRAMES:
                group = grouped(decoded.source, decoded.body)
                found.append((len(group.relays), len({id(f) for fs in group.frames for f in fs})))
    return found


async def test_a_broadcast_to_relayed_sessions_is_one_stream_entry_per_node(
    redis_server: RedisServer,
) -> None:
    """Each of 10 broadcasts reaches 20 clients of node b as one entry of b's relay
    stream that lists all 20 relays and carries the frame once."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            coredis.Redis.from_url(url) as redis,
            open_fanout_node(url, "a") as (_, port_a),
            open_fanout_node(url, "b") as (_, port_b),
            open_raw(port_a, FAN) as on_a,
        ):
            assert await on_a.receive_json() == {"type": "hello", "node": "a"}
            async with AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(open_raw(port_b, FAN)) for _ in range(20)
                ]
                for client in clients:
                    assert await client.receive_json() == {"type": "hello", "node": "a"}
                after = await _last_id(redis, "b")
                for n in range(10):
                    await on_a.send_text(f'{{"type": "shout", "n": {n}}}')
                    for client in [on_a, *clients]:
                        assert await client.receive_json() == {"type": "said", "n": n}
                entries = await _frames_entries(redis, "b", after)
    assert entries == [(20, 1)] * 10


async def test_a_relayed_senders_frames_and_broadcasts_keep_the_owners_order(
    redis_server: RedisServer,
) -> None:
    """A relayed client's own frames and the room's broadcasts, sent in one burst, reach it
    interleaved exactly as the owner sent them, and the other relayed clients get every
    broadcast in order, in far fewer stream entries than frames."""
    url = redis_server.url
    burst = 50
    with trio.fail_after(PATIENCE):
        async with (
            coredis.Redis.from_url(url) as redis,
            open_fanout_node(url, "a") as (_, port_a),
            open_fanout_node(url, "b") as (_, port_b),
            open_raw(port_a, FAN) as on_a,
            open_raw(port_b, FAN) as sender,
            open_raw(port_b, FAN) as other,
            open_raw(port_b, FAN) as third,
        ):
            for client in (on_a, sender, other, third):
                assert await client.receive_json() == {"type": "hello", "node": "a"}
            after = await _last_id(redis, "b")
            await sender.send_text(f'{{"type": "burst", "count": {burst}}}')
            got = [await sender.receive_json() for _ in range(2 * burst)]
            others = [
                [await client.receive_json() for _ in range(burst)] for client in (other, third)
            ]
            entries = await _frames_entries(redis, "b", after)
    ticks = [{"type": "tick", "n": n} for n in range(burst)]
    assert got == [frame for n in range(burst) for frame in (ticks[n], {"type": "mine", "n": n})]
    assert others == [ticks, ticks]
    assert sum(frames for _, frames in entries) == 2 * burst  # each broadcast once
    assert len(entries) <= 2  # the first broadcast, then the writers' batches together


async def test_a_coalesced_broadcast_keeps_its_policy_on_a_slow_relayed_clients_node(
    redis_server: RedisServer,
) -> None:
    """A relayed client that does not read gets coalesced frames dropped by its own node,
    not a 1008: it ends with the newest, and as it counts frames, it is told how many
    were dropped, so that its count is the owner's."""
    url = redis_server.url
    count, size = 400, 32 * 1024  # 12.5 MiB: far over b's queue and socket buffers

    def queues(limit: int) -> trio_rooms.RoomsConfig:
        return trio_rooms.RoomsConfig(
            rate_limit=None, max_connections_per_address=10_000, outbound_max_bytes=limit
        )

    with trio.fail_after(PATIENCE):
        async with (
            open_fanout_node(url, "a", queues(64 * 1024 * 1024)) as (_, port_a),
            open_fanout_node(url, "b", queues(256 * 1024)) as (_, port_b),
            open_raw(port_a, FAN) as on_a,
            open_raw(port_b, FAN + "?resume=&seen=0", rcvbuf=4096) as slow,
        ):
            assert await on_a.receive_json() == {"type": "hello", "node": "a"}
            assert "$session" in await slow.receive_json()
            assert await slow.receive_json() == {"type": "hello", "node": "a"}
            await on_a.send_text(f'{{"type": "move", "count": {count}, "size": {size}}}')
            while (await on_a.receive_json())["type"] != "moves":
                pass
            xs: list[int] = []
            skipped = 0
            while not xs or xs[-1] != count - 1:
                message = await slow.receive_json()
                if "$skipped" in message:
                    value = message["$skipped"]
                    assert isinstance(value, int)
                    skipped += value
                else:
                    x = message["x"]
                    assert isinstance(x, int)
                    xs.append(x)
            await slow.send_text('{"type": "leave", "code": 4000}')
            assert await slow.close_code() == 4000
    assert xs == sorted(set(xs))
    assert skipped > 0
    assert len(xs) + skipped == count


async def test_grouped_frames_count_against_max_relay_queue(redis_server: RedisServer) -> None:
    """Frames waiting to be grouped into an entry count against max_relay_queue: past it
    the queue's write without waiting is refused (the session's writer waits instead)."""
    link = RelayLink(
        redis_server.url, "a", prefix="t:", timeout=0.5, dead_after=1.5, max_stream=100, max_queue=2
    )
    end = link.new_end("b")
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            taken = [link.put_frames(end, [Frame(TEXT, b"%d" % n)]) for n in range(3)]
            nursery.cancel_scope.cancel()
    assert taken == [True, True, False]
