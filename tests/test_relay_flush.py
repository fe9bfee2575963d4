"""`RelayLink.flush_nowait`: a commit's relayed frames leave at once, in order, whole."""

from __future__ import annotations

import trio

from trio_rooms._core.outbound import TEXT, Frame
from trio_rooms._resp import open_resp
from trio_rooms.backplane._relay_entries import FRAMES, decode_all
from trio_rooms.backplane._relay_frames import grouped
from trio_rooms.backplane._relay_link import RelayLink

from .redis_server import RedisServer
from .relay_streams import stream_data

PATIENCE = 10.0


async def _frames_added(url: str, key: bytes, count: int) -> list[bytes]:
    """The payloads of the FRAMES entries in stream ``key``, once ``count`` are there."""
    async with open_resp(url, timeout=1.0) as connection:
        while True:
            payloads: list[bytes] = []
            for data in await stream_data(connection, key):
                for entry in decode_all(data):
                    assert not isinstance(entry, Exception)
                    if entry.kind == FRAMES:
                        group = grouped(entry.source, entry.body)
                        payloads += [frame.payload for frame in group.frames[0]]
            if len(payloads) >= count:
                return payloads
            await trio.sleep(0.01)  # sync-ok: polls another process's stream


async def test_a_flush_frees_the_queue_at_once_and_its_entries_arrive_in_order(
    redis_server: RedisServer,
) -> None:
    """Grouped frames flushed while the writer is idle are written without a checkpoint
    (the queue has room again at once), and reach the peer's stream in order with what
    was grouped after."""
    link = RelayLink(
        redis_server.url, "a", prefix="t:", timeout=0.5, dead_after=1.5, max_stream=100, max_queue=2
    )
    end = link.new_end("b")
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            await trio.testing.wait_all_tasks_blocked()
            taken = [link.put_frames(end, [Frame(TEXT, b"%d" % n)]) for n in range(3)]
            link.flush_nowait()
            taken += [link.put_frames(end, [Frame(TEXT, b"%d" % n)]) for n in range(3, 5)]
            payloads = await _frames_added(redis_server.url, b"t:relay:b", 4)
            nursery.cancel_scope.cancel()
    assert taken == [True, True, False, True, True]
    assert payloads == [b"0", b"1", b"3", b"4"]


async def test_what_the_socket_does_not_take_goes_first_after_a_flush(
    redis_server: RedisServer,
) -> None:
    """A flush larger than the socket takes at once leaves the rest to the writer, which
    sends it before the next entry: both arrive whole and in order."""
    link = RelayLink(
        redis_server.url, "a", prefix="t:", timeout=2.0, dead_after=5.0, max_stream=100, max_queue=8
    )
    end = link.new_end("b")
    large = b"x" * (32 * 1024 * 1024)
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            await trio.testing.wait_all_tasks_blocked()
            assert link.put_frames(end, [Frame(TEXT, large)])
            link.flush_nowait()
            assert link.put_frames(end, [Frame(TEXT, b"after")])
            link.flush_nowait()  # the rest of the first is still to go: left to the writer
            payloads = await _frames_added(redis_server.url, b"t:relay:b", 2)
            nursery.cancel_scope.cancel()
    assert payloads == [large, b"after"]
