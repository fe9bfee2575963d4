"""An alarm set on one node whose owner then dies or steps down fires once on the next.

Every node is `tests.owner_app` in a subprocess on one real redis-server: its room
``game`` sets the alarm ``ring`` on `Arm`, and its ``on_alarm`` counts the firings in
storage (``rings``) and broadcasts `Rang` with the node that ran it. The other node's
scheduler looked at the storage before the alarm was set (it started first), so only a
later look of its own can find the alarm once the owner is gone.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncGenerator
from typing import cast

import coredis
import orjson
import pytest
import trio

from .owner_app import open_owner_node
from .redis_server import RedisServer
from .redis_witness import PREFIX, next_message, open_keyspace_events
from .sockets import PING, TEXT, RawClient, open_raw

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
RINGS = PREFIX + b"state:game:rings"
#: Bounds every wait: a few lease TTLs, and the nodes' start on a loaded box.
PATIENCE = 30.0
#: Long enough that the first owner is gone before the alarm falls due.
DELAY = 3.0

Message = dict[str, object]


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncGenerator[coredis.Redis[bytes]]:
    """A plain client, to read what the rooms stored."""
    client = coredis.Redis.from_url(redis_server.url)
    async with client:
        yield client


async def _receive(client: RawClient) -> Message:
    return cast("Message", orjson.loads(await client.receive_text()))


async def _until_rang(client: RawClient) -> Message:
    """The first `Rang` the client was sent, skipping welcomes and the like."""
    while (frame := await client.receive_frame()) is not None:
        if frame.opcode == TEXT:
            message = cast("Message", orjson.loads(frame.payload))
            if message.get("type") == "rang":
                return message
        else:
            assert frame.opcode == PING, frame
    raise AssertionError("the connection ended before the alarm rang")


async def _arm_durably(client: RawClient) -> None:
    """Set the alarm, and wait until it is stored: the `Add` after it is answered once
    its own write is durable, and the room's commits are in order."""
    await client.send_text(orjson.dumps({"type": "arm", "delay": DELAY}).decode())
    await client.send_text('{"type": "add"}')
    assert (await _receive(client))["type"] == "counted"


async def _assert_rang_once(redis: coredis.Redis[bytes]) -> None:
    assert await redis.get(RINGS) == b"1"
    # Deleted in the firing's own commit: nothing is left to fire it again.
    assert await redis.hlen(PREFIX + b"alarms:game") == 0
    assert await redis.zcard(PREFIX + b"alarm-queue") == 0


async def test_an_alarm_of_a_killed_owner_fires_once_on_the_next_owner(
    redis_server: RedisServer, redis: coredis.Redis[bytes]
) -> None:
    """kill -9 of the owner right after its room set an alarm: the relayed client of the
    other node sees it ring there, once, after the room moved to that node."""
    with trio.fail_after(PATIENCE):
        async with (
            open_owner_node(redis_server.url, "a") as (process_a, port_a),
            open_owner_node(redis_server.url, "b") as (_, port_b),
        ):
            async with open_raw(port_a, GAME) as owner:
                assert (await _receive(owner))["node"] == "a"
                async with open_raw(port_b, GAME) as relayed:
                    assert (await _receive(relayed))["node"] == "a"
                    await _arm_durably(relayed)
                    process_a.kill()
                    await process_a.wait()
                    assert await _until_rang(relayed) == {"type": "rang", "node": "b", "rings": 1}
            await _assert_rang_once(redis)


async def test_an_alarm_of_an_owner_that_stepped_down_fires_with_no_client_left(
    redis_server: RedisServer, redis: coredis.Redis[bytes]
) -> None:
    """SIGTERM on the owner once its room set an alarm, and no client anywhere: the other
    node takes the room for the alarm alone, and it fires there once."""
    async with (
        open_keyspace_events(redis_server, redis, [RINGS], "g$x") as events,
        open_owner_node(redis_server.url, "a") as (process_a, port_a),
        open_owner_node(redis_server.url, "b"),
    ):
        with trio.fail_after(PATIENCE):
            async with open_raw(port_a, GAME) as owner:
                assert (await _receive(owner))["node"] == "a"
                await _arm_durably(owner)
            process_a.send_signal(signal.SIGTERM)
            assert await process_a.wait() == 0
            # Nothing else writes the count of firings: its first write is the firing's.
            while (await next_message(events))[0] != b"__keyspace@0__:" + RINGS:
                pass
        assert await redis.get(PREFIX + b"state:game:starts") == b"2"  # b started it
        await _assert_rang_once(redis)
