"""What Redis itself saw, in its own order and on its own clock, for the cluster tests.

A test of a failover or of a dead node checks what caused what, not how long it took
(that is a benchmark's figure; on a loaded box no wall-clock bound is a test's to
assert): Redis's keyspace events say in which order keys were set, expired or
trimmed, and a stream entry's id is the time Redis added it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import coredis

from trio_rooms._resp import RespConnection, open_resp
from trio_rooms.backplane._relay_entries import BEAT, Entry, decode_all

from .redis_server import RedisServer

#: The default prefix of the cluster's keys.
PREFIX = b"trio_rooms:"


def lease_key(room: str) -> bytes:
    """The key of room ``room``'s lease."""
    return PREFIX + b"lease:" + room.encode()


def session_key(room: str, session_id: str) -> bytes:
    """The key of the record of session ``session_id`` in room ``room``: `RedisStorage`
    writes it with ``SET`` (``PXAT``), a keyspace ``set`` event of class ``$``."""
    return PREFIX + b"session:" + room.encode() + b":" + session_id.encode()


def relay_stream(node: str) -> bytes:
    """The stream node ``node`` reads what the others relay to it from."""
    return PREFIX + b"relay:" + node.encode()


@asynccontextmanager
async def open_keyspace_events(
    redis_server: RedisServer, redis: coredis.Redis[bytes], keys: Iterable[bytes], classes: str
) -> AsyncGenerator[RespConnection]:
    """A connection subscribed to what Redis does to ``keys``, in Redis's order.

    ``classes`` are the event classes of ``notify-keyspace-events`` besides ``K``: ``g$x``
    for a lease (``set``, ``expire``: a renewal, ``expired``: its TTL ran out), ``z`` for
    a sorted set. Channels of plain messages may be subscribed to on it too: one
    connection hears them in the order Redis sent them, across keys and channels.
    """
    await redis.config_set({"notify-keyspace-events": "K" + classes})
    async with open_resp(redis_server.url, timeout=5.0, name="tests.keyspace_events") as events:
        for key in keys:
            await events.call(b"SUBSCRIBE", b"__keyspace@0__:" + key)
        yield events


def open_lease_events(
    redis_server: RedisServer, redis: coredis.Redis[bytes], room: str
) -> AbstractAsyncContextManager[RespConnection]:
    """A subscription to what Redis does to room ``room``'s lease: ``set`` (an
    acquisition), ``expire`` (a renewal), ``expired`` (its TTL ran out), ``del``."""
    return open_keyspace_events(redis_server, redis, [lease_key(room)], "g$x")


async def next_message(events: RespConnection) -> tuple[bytes, bytes]:
    """The next message of a subscription: its channel and its data (for a keyspace
    channel, the event's name)."""
    message = await events.reply()
    assert isinstance(message, list), message
    assert message[0] == b"message", message
    channel, data = message[1], message[2]
    assert isinstance(channel, bytes), message
    assert isinstance(data, bytes), message
    return channel, data


async def events_until(events: RespConnection, last: bytes) -> list[bytes]:
    """The events from the subscription on up to the next ``last``, that one included."""
    seen: list[bytes] = []
    while not seen or seen[-1] != last:
        seen.append((await next_message(events))[1])
    return seen


def lease_holder(lease: bytes | None) -> tuple[str, int]:
    """The node and fencing token a lease's value names."""
    assert lease is not None
    node, _, token = lease.decode().rpartition(":")
    return node, int(token)


async def redis_time_ms(url: str) -> int:
    """Now on Redis's clock, in milliseconds: the clock of its stream ids and TTLs.
    (Raw: coredis's `time` drops the microseconds.)"""
    async with open_resp(url, timeout=5.0, name="tests.time") as connection:
        now = await connection.call(b"TIME")
    assert isinstance(now, list), now
    seconds, micros = now
    assert isinstance(seconds, bytes), now
    assert isinstance(micros, bytes), now
    return int(seconds) * 1000 + int(micros) // 1000


async def relayed_entries(redis: coredis.Redis[bytes], node: str) -> list[tuple[int, Entry]]:
    """Every relay entry in ``node``'s stream, oldest first, each with the time (Redis's,
    ms) its stream entry was added at."""
    found: list[tuple[int, Entry]] = []
    for stream_entry in await redis.xrange(relay_stream(node)):
        identifier, data = stream_entry.identifier, stream_entry.field_values[b"e"]
        assert isinstance(identifier, bytes), identifier
        assert isinstance(data, bytes), data
        added = int(identifier.partition(b"-")[0])  # "<ms>-<n>": Redis's clock
        for entry in decode_all(data):
            assert isinstance(entry, Entry), entry
            found.append((added, entry))
    return found


async def silent_for_ms(url: str, node: str, peer: str) -> int:
    """How long, by Redis's clock (ms), ``peer`` has added nothing to ``node``'s stream."""
    redis = coredis.Redis.from_url(url)
    async with redis:
        entries = await relayed_entries(redis, node)
    heard = max(added for added, entry in entries if entry.source == peer)
    return await redis_time_ms(url) - heard


def _incarnation(entry: Entry) -> str:
    """The process of its source node an entry came from: a BEAT names it, and the
    client's node's relay ids start with it (``<incarnation>.<n>``)."""
    if entry.kind == BEAT:
        assert isinstance(entry.body[0], str), entry
        return entry.body[0]
    return entry.relay.partition(".")[0]


async def first_process_told_gone(url: str, node: str, peer: str, dead_after: float) -> bool:
    """Whether ``node`` could by now tell that ``peer``'s first process is gone: a BEAT
    of another process of ``peer`` is in its stream, or that first process has added
    nothing to it for ``dead_after`` by Redis's clock."""
    redis = coredis.Redis.from_url(url)
    async with redis:
        entries = await relayed_entries(redis, node)
    now = await redis_time_ms(url)
    first = _incarnation(next(entry for _, entry in entries if entry.source == peer))
    if any(e.source == peer and e.kind == BEAT and _incarnation(e) != first for _, e in entries):
        return True
    heard = max(added for added, e in entries if e.source == peer and _incarnation(e) == first)
    return now - heard >= dead_after * 1000


# One atomic step: a sorted set's scores and the time on Redis's clock they are read at.
_SCORES_NOW = b"""
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return {now, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
"""


async def scores_now(url: str, key: bytes) -> tuple[int, dict[bytes, int]]:
    """Now on Redis's clock (ms) and the members of sorted set ``key`` with their scores
    (the membership's and presence's deadlines, on that clock), read at once."""
    async with open_resp(url, timeout=5.0, name="tests.scores") as connection:
        reply = await connection.call(b"EVAL", _SCORES_NOW, b"1", key)
    assert isinstance(reply, list), reply
    now, flat = reply
    assert isinstance(now, int), reply
    assert isinstance(flat, list), reply
    members = [member for member in flat[::2] if isinstance(member, bytes)]
    scores = [int(score) for score in flat[1::2] if isinstance(score, bytes)]
    assert len(members) == len(scores) == len(flat) // 2, reply
    return now, dict(zip(members, scores, strict=True))
