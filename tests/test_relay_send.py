"""A relay entry queued without waiting (`RelayLink.try_send`, `try_message`), and `send`
waiting for room."""

from __future__ import annotations

import trio

from trio_rooms._resp import open_resp
from trio_rooms.backplane._relay_entries import MESSAGE, Entry, decode_all
from trio_rooms.backplane._relay_link import RelayLink

from .redis_server import RedisServer

PATIENCE = 10.0


async def _messages(url: str, key: bytes, count: int) -> list[object]:
    """The bodies of the first ``count`` relay entries added to ``key`` (blocking reads)."""
    entries = await _entries(url, key, count)
    return [entry.body[0] if entry.body else None for entry in entries]


async def test_a_send_past_the_queues_bound_waits_and_every_entry_goes_in_order(
    redis_server: RedisServer,
) -> None:
    """`try_send` queues up to ``max_queue`` entries and then refuses, queuing nothing;
    `send` then waits for the writer to take them and queues its own after them."""
    link = RelayLink(
        redis_server.url, "a", prefix="t:", timeout=0.5, dead_after=60, max_stream=100, max_queue=2
    )
    end = link.new_end("b")
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            # (No checkpoint between them: the writer cannot take any meanwhile.)
            queued = [link.try_send(end, MESSAGE, text) for text in ("one", "two", "no")]
            sent_before = end.sent
            await link.send(end, MESSAGE, "three")
            bodies = await _messages(redis_server.url, b"t:relay:b", 3)
            nursery.cancel_scope.cancel()
    assert queued == [True, True, False]
    assert sent_before == 2  # the refused one took no seq
    assert bodies == ["one", "two", "three"]
    assert end.sent == 3


async def test_messages_queued_by_try_message_and_try_send_interleave_in_order(
    redis_server: RedisServer,
) -> None:
    """`try_message` numbers its entries in the same count as `try_send`, on the relay's
    own head, and refuses past ``max_queue`` as it does, taking no seq."""
    link = RelayLink(
        redis_server.url, "a", prefix="t:", timeout=0.5, dead_after=60, max_stream=100, max_queue=3
    )
    end = link.new_end("b")
    other = link.new_end("b")
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            queued = [
                link.try_message(end, "one"),
                link.try_send(end, MESSAGE, b"two"),
                link.try_message(other, b"three"),
                link.try_message(end, "no"),
            ]
            refused_at = end.sent
            await link.send(end, MESSAGE, "four")
            assert link.try_message(end, "five")
            entries = await _entries(redis_server.url, b"t:relay:b", 5)
            nursery.cancel_scope.cancel()
    assert queued == [True, True, True, False]
    assert refused_at == 2
    assert [(entry.relay, entry.seq, entry.body) for entry in entries] == [
        (end.relay, 1, ("one",)),
        (end.relay, 2, (b"two",)),
        (other.relay, 1, (b"three",)),
        (end.relay, 3, ("four",)),
        (end.relay, 4, ("five",)),
    ]
    assert all(entry.kind == MESSAGE and entry.source == "a" for entry in entries)


async def _entries(url: str, key: bytes, count: int) -> list[Entry]:
    """The first ``count`` relay entries added to ``key`` (blocking reads)."""
    found: list[Entry] = []
    after = b"0"
    async with open_resp(url, timeout=1.0) as connection:
        while len(found) < count:
            reply = await connection.call(b"XREAD", b"BLOCK", b"0", b"STREAMS", key, after)
            assert isinstance(reply, list)
            stream = reply[0]
            assert isinstance(stream, list)
            assert isinstance(stream[1], list)
            for item in stream[1]:
                assert isinstance(item, list)
                entry_id, fields = item
                assert isinstance(entry_id, bytes)
                assert isinstance(fields, list)
                after = entry_id
                data = fields[1]
                assert isinstance(data, bytes)
                for entry in decode_all(data):
                    assert isinstance(entry, Entry)
                    found.append(entry)
    return found
