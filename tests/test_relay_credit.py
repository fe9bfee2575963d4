"""An owner's CREDIT rides with its next write to Redis, and never holds the client back."""

from __future__ import annotations

import trio

from trio_rooms._core.outbound import TEXT, Frame
from trio_rooms._resp import open_resp
from trio_rooms.backplane._relay_end import RelayEnd
from trio_rooms.backplane._relay_entries import CREDIT, FRAMES, MESSAGE, Entry, decode_all
from trio_rooms.backplane._relay_link import RelayLink
from trio_rooms.backplane._relayed import RelayedConnection

from .redis_server import RedisServer
from .relay_streams import stream_data

PATIENCE = 10.0
#: The relayed session's credit window: a CREDIT every 4 messages taken.
WINDOW = 8


async def _stream_entries(url: str, key: bytes, count: int) -> list[list[Entry]]:
    """The relay entries of each stream entry in ``key``, once ``count`` are there."""
    async with open_resp(url, timeout=1.0) as connection:
        while True:
            found: list[list[Entry]] = []
            for data in await stream_data(connection, key):
                entries = decode_all(data)
                assert all(isinstance(entry, Entry) for entry in entries)
                found.append([entry for entry in entries if isinstance(entry, Entry)])
            if len(found) >= count:
                return found
            await trio.sleep(0.01)  # sync-ok: polls the stream another task writes


def _owner_side(url: str) -> tuple[RelayLink, RelayEnd, RelayedConnection]:
    # Beats every 20 s: none within the test, so nothing else wakes the link's writer.
    link = RelayLink(
        url, "a", prefix="t:", timeout=0.5, dead_after=60, max_stream=100, max_queue=64
    )
    end = RelayEnd("b", "r.1", received=1)
    return link, end, RelayedConnection(link, end, WINDOW, lambda: True)


async def _take(connection: RelayedConnection, first: int, count: int) -> None:
    """Deliver the client's messages ``first`` to ``first + count - 1`` and take them."""
    for seq in range(first, first + count):
        connection.deliver(Entry(MESSAGE, "b", "r.1", seq + 1, (f"m{seq}",)))
        assert await connection.receive() == f"m{seq}"


async def test_a_credit_waits_for_the_reply_and_leaves_in_its_write(
    redis_server: RedisServer,
) -> None:
    """The CREDIT owed after half a window is not written on its own: it reaches the
    client node's stream in the same stream entry as the frames flushed after it, first."""
    link, end, connection = _owner_side(redis_server.url)
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            # The link's writer starts after `run` reports ready: one that first runs with
            # the CREDIT queued writes it then, as it should (a race, not what is tested).
            await trio.testing.wait_all_tasks_blocked()
            await _take(connection, 1, WINDOW // 2)
            await trio.testing.wait_all_tasks_blocked()  # a woken writer would write now
            assert link.put_frames(end, [Frame(TEXT, b"reply")])
            link.flush_nowait()
            (written,) = await _stream_entries(redis_server.url, b"t:relay:b", 1)
            nursery.cancel_scope.cancel()
    assert [entry.kind for entry in written] == [CREDIT, FRAMES]
    assert (written[0].body, written[0].seq, written[1].body[0]) == (
        (WINDOW // 2,),
        1,
        (("r.1", 2, None),),
    )


async def test_a_credit_no_reply_carries_leaves_before_the_window_runs_out(
    redis_server: RedisServer,
) -> None:
    """With nothing else written, the owed CREDIT is written once three quarters of the
    window were taken, before the client's node could have run out of credit."""
    link, _, connection = _owner_side(redis_server.url)
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            await _take(connection, 1, WINDOW - WINDOW // 4)
            (written,) = await _stream_entries(redis_server.url, b"t:relay:b", 1)
            nursery.cancel_scope.cancel()
    assert [(entry.kind, entry.body) for entry in written] == [(CREDIT, (WINDOW // 2,))]
