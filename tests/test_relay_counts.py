"""A relayed client's delivery policies count in the owner's statistics, as a local one's.

Two nodes of `tests.fanout_app` in this process on one real redis-server; node ``a``
owns the room (its client comes first). The slow client reads nothing for a while, on
node ``a`` (local) or on node ``b`` (relayed: its queue, where the policies act, is b's).
"""

from __future__ import annotations

import orjson
import pytest
import trio

import trio_rooms
from trio_rooms.backplane._relay_entries import EntryError, reported

from .fanout_app import open_fanout_node
from .redis_server import RedisServer
from .sockets import RawClient, open_raw

pytestmark = pytest.mark.slow

FAN = "/rooms/fan/websocket"
PATIENCE = 60.0
#: 12.5 MiB a drip: far over the slow client's queue and socket buffers.
COUNT, SIZE = 400, 32 * 1024


def _config(outbound_max_bytes: int) -> trio_rooms.RoomsConfig:
    return trio_rooms.RoomsConfig(
        rate_limit=None,
        max_connections_per_address=10_000,
        outbound_max_bytes=outbound_max_bytes,
    )


async def _drip(sender: RawClient, policy: str) -> None:
    """Have the room broadcast a `Drip` to all but ``sender``, and wait until it did."""
    drip = {"type": "drip", "count": COUNT, "size": SIZE, "policy": policy}
    await sender.send_text(orjson.dumps(drip).decode())
    assert await sender.receive_json() == {"type": "dripping", "count": COUNT}


async def _read_drip(client: RawClient) -> tuple[list[int], int]:
    """A counting client's drip, read to its last: the xs it got, and the skips it was told."""
    xs: list[int] = []
    skipped = 0
    while not xs or xs[-1] != COUNT - 1:
        message = await client.receive_json()
        if "$skipped" in message:
            told = message["$skipped"]
            assert isinstance(told, int)
            skipped += told
        else:
            x = message["x"]
            assert isinstance(x, int)
            xs.append(x)
    return xs, skipped


@pytest.mark.parametrize("where", ["local", "relayed"])
async def test_a_slow_clients_policies_count_on_the_owner_as_a_local_clients_do(
    redis_server: RedisServer, where: str
) -> None:
    """A slow client's dropped-oldest and coalesced frames (as many as it was told of) and
    its close as a slow consumer (one dropped message) are counted in the owner's totals
    and ``by_room``, the same whether its socket is on the owner or on another node."""
    relayed = where == "relayed"
    small, large = _config(256 * 1024), _config(64 * 1024 * 1024)
    with trio.fail_after(PATIENCE):
        async with (
            open_fanout_node(redis_server.url, "a", large if relayed else small) as (rooms_a, a),
            open_fanout_node(redis_server.url, "b", small) as (rooms_b, b),
            open_raw(a, FAN) as sender,
        ):
            assert await sender.receive_json() == {"type": "hello", "node": "a"}
            port = b if relayed else a
            told: dict[str, int] = {}
            for policy in ("coalesce", "drop-oldest"):
                async with open_raw(port, FAN + "?resume=&seen=0", rcvbuf=4096) as slow:
                    assert "$session" in await slow.receive_json()
                    assert await slow.receive_json() == {"type": "hello", "node": "a"}
                    await _drip(sender, policy)
                    xs, told[policy] = await _read_drip(slow)
                    await slow.send_text('{"type": "leave", "code": 4000}')
                    assert await slow.close_code() == 4000
                assert xs == sorted(set(xs))
                assert len(xs) + told[policy] == COUNT
                assert told[policy] > 0
            async with open_raw(port, FAN, rcvbuf=4096) as slow:
                assert await slow.receive_json() == {"type": "hello", "node": "a"}
                await _drip(sender, "disconnect")
                assert await slow.close_code() == 1008
            # What a relay's node reported came before the close it led to or followed.
            stats = await rooms_a.wait_statistics(
                lambda stats: stats.closes.get(4000) == 2 and stats.closes.get(1008) == 1
            )
            on_b = rooms_b.statistics()
    expected = (told["drop-oldest"], told["coalesce"], 1)
    room = stats.by_room["fan"]
    assert (room.dropped_oldest, room.coalesced, room.slow_consumers) == expected
    assert (stats.dropped_oldest, stats.coalesced, stats.slow_consumers) == expected
    assert stats.dropped == 1
    assert dict(stats.closes) == {4000: 2, 1008: 1}
    # The client's node counts none of it itself: the room is the owner's.
    assert (on_b.dropped_oldest, on_b.coalesced, on_b.slow_consumers, on_b.dropped) == (0,) * 4


@pytest.mark.parametrize(
    "body",
    [(), (1, 2), (1, 2, 3, 4), (1, -1, 0), (1, "2", 3), (True, 0, 0), (0, 0, None)],
)
def test_a_malformed_report_is_refused(body: tuple[object, ...]) -> None:
    """A REPORT that is not three counts is refused with `EntryError`."""
    with pytest.raises(EntryError):
        reported(body)


def test_a_report_reads_its_three_counts() -> None:
    """A REPORT's body is read as dropped-oldest, coalesced and slow-consumer counts."""
    assert reported((3, 0, 1)) == (3, 0, 1)
