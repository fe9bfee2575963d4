"""A relayed client too slow to take its frames moves when its owner is lost, at once.

As in `tests.test_redteam5_slow_move`: node ``a`` (the owner, killed with SIGKILL) has
answered a burst of a relayed client of node ``b`` that reads nothing, so ``b`` is in the
middle of a write to it. ``b`` no longer waits ``close_timeout`` for that write (here a
minute, past the test's patience): it stops writing at once, keeps the unwritten rest of
the cut frame for the next write, and moves the session to the next owner, which replays
what the client was not written. The client, reading again, gets every frame whole, and
every answer exactly once, in order, on the connection it never left.
"""

from __future__ import annotations

from typing import cast

import coredis
import orjson
import pytest
import trio

from .attack_app import attack_config, open_attack_node, serve_attack_rooms
from .redis_server import RedisServer
from .redis_witness import next_message, open_keyspace_events
from .sockets import TEXT, client_frame, open_raw
from .test_redteam5_slow_move import BLOB, ECHOES, GAME, LOG, PATIENCE, read_until_moved

pytestmark = pytest.mark.slow


async def test_a_slow_relayed_client_moves_without_waiting_for_its_write(
    redis_server: RedisServer,
) -> None:
    url = redis_server.url
    config = attack_config(
        outbound_max_bytes=64 * 1024 * 1024,
        outbound_max_messages=10_000,
        slow_consumer_timeout=60.0,
        close_timeout=2 * PATIENCE,  # waited for, it would fail the test
    )
    burst = b"".join(
        client_frame(TEXT, b'{"type": "echo", "n": %d}' % n)
        + client_frame(TEXT, b'{"type": "flood", "count": 1, "size": %d}' % BLOB)
        for n in range(ECHOES)
    )
    with trio.fail_after(PATIENCE):
        async with (
            coredis.Redis.from_url(url) as redis,
            serve_attack_rooms(url, "b", config) as (rooms_b, port_b),
            open_attack_node(url, "a") as (process_a, port_a),
            open_raw(port_a, GAME) as owner,
            open_keyspace_events(redis_server, redis, [LOG], "z") as logged,
            open_raw(port_b, GAME + "?resume=&seen=0", rcvbuf=4096) as client,
        ):
            assert orjson.loads(await owner.receive_text())["node"] == "a"
            session = cast("dict[str, object]", orjson.loads(await client.receive_text()))
            welcome = orjson.loads(await client.receive_text())
            assert welcome["node"] == "a"
            before = await redis.zcard(LOG)
            await client.send(burst)
            while await redis.zcard(LOG) < before + 2 * ECHOES:
                await next_message(logged)
            process_a.kill()
            # b took the room and resumed the session there: its move waited for nothing.
            await rooms_b.wait_statistics(
                lambda stats: stats.relayed_sessions == 0 and stats.sessions == 1
            )
            messages, code = await read_until_moved(client)
    assert code is None  # not closed: moved, the next owner's welcome came
    moved = [cast("dict[str, object]", m["$session"]) for m in messages if "$session" in m]
    assert [m["id"] for m in moved] == [cast("dict[str, object]", session["$session"])["id"]]
    assert moved[0]["resumed"] is True
    assert messages[-1] == {"type": "welcome", "node": "b", "session": moved[0]["id"]}
    echoes = [m["n"] for m in messages if m.get("type") == "echoed"]
    assert echoes == list(range(ECHOES)), echoes
    blobs = [m for m in messages if m.get("type") == "blob"]
    assert blobs == [{"type": "blob", "data": "x" * BLOB}] * ECHOES
