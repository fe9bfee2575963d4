"""How a node reads its relay stream: reads waiting in Redis ahead, from the right entry."""

from __future__ import annotations

import re

import trio
import trio.testing

from trio_rooms._resp import RespConnection, open_resp, resp_command
from trio_rooms.backplane._relay_entries import OPEN, Entry, encode
from trio_rooms.backplane._relay_link import RelayLink

from .redis_server import RedisServer

PATIENCE = 10.0
STREAM = b"t:relay:a"
#: One of the link's reads, with `_link`'s timeout (its BLOCK is 250 ms).
READ = resp_command(
    *(b"XREADGROUP", b"GROUP", b"trio_rooms", b"trio_rooms", b"COUNT", b"1024"),
    *(b"BLOCK", b"250", b"NOACK", b"STREAMS", STREAM, b">"),
)


def _link(url: str) -> RelayLink:
    return RelayLink(
        url, "a", prefix="t:", timeout=0.5, dead_after=1.5, max_stream=100, max_queue=8
    )


async def _add_open(redis: RespConnection, relay: str) -> None:
    """An OPEN of node ``b``'s relay ``relay`` on node ``a``'s stream."""
    await redis.call(b"XADD", STREAM, b"*", b"e", encode(OPEN, "b", relay, 1))


async def _waiting_read_bytes(redis: RespConnection) -> int:
    """Bytes of commands waiting in Redis behind the read the node's reader is blocked in."""
    listing = await redis.call(b"CLIENT", b"LIST")
    assert isinstance(listing, bytes)
    for line in listing.decode().splitlines():
        if " cmd=xreadgroup " in line and re.search(r" flags=\w*b", line):
            found = re.search(r" qbuf=(\d+) ", line)
            assert found is not None
            return int(found[1])
    raise AssertionError(f"no reader blocked in XREADGROUP: {listing!r}")


async def test_entries_added_one_by_one_come_in_order_with_reads_always_waiting_ahead(
    redis_server: RedisServer,
) -> None:
    """Twenty entries, each added once the one before was handed out, reach the link in
    order while at least three further reads wait in Redis behind the blocked one (so
    asking for reads is not a write per entry)."""
    link = _link(redis_server.url)
    opened: list[str] = []
    handed = trio.Event()

    def on_open(entry: Entry) -> None:
        opened.append(entry.relay)
        handed.set()

    link.on_open = on_open
    waiting: list[int] = []
    with trio.fail_after(PATIENCE):
        async with (
            open_resp(redis_server.url, timeout=1.0) as redis,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(link.run)
            for number in range(20):
                handed = trio.Event()
                await _add_open(redis, f"r{number}")
                await handed.wait()
                await trio.testing.wait_all_tasks_blocked()
                waiting.append(await _waiting_read_bytes(redis) // len(READ))
            nursery.cancel_scope.cancel()
    assert opened == [f"r{number}" for number in range(20)]
    assert min(waiting) >= 3, waiting


async def test_a_new_process_of_a_node_id_reads_nothing_its_stream_held_before(
    redis_server: RedisServer,
) -> None:
    """A stream left by an earlier process of the same node id, its group still placed
    before an old entry, gives the new link only what is added after it connected."""
    link = _link(redis_server.url)
    opened: list[str] = []
    handed = trio.Event()

    def on_open(entry: Entry) -> None:
        opened.append(entry.relay)
        handed.set()

    link.on_open = on_open
    with trio.fail_after(PATIENCE):
        async with (
            open_resp(redis_server.url, timeout=1.0) as redis,
            trio.open_nursery() as nursery,
        ):
            await _add_open(redis, "old")
            await redis.call(b"XGROUP", b"CREATE", STREAM, b"trio_rooms", b"0")
            await nursery.start(link.run)
            await _add_open(redis, "new")
            await handed.wait()
            await _add_open(redis, "newer")
            while len(opened) < 2:
                handed = trio.Event()
                await handed.wait()
            nursery.cancel_scope.cancel()
    assert opened == ["new", "newer"]
