"""Red team 5: a relayed client too slow to take its frames when its owner is killed.

Node ``a`` (the owner, `tests.attack_app` in a subprocess) answers a burst of a slow
client of node ``b`` (in this process, with room in its queue for all of it); the client
reads nothing, so ``b`` is still writing to its socket, a frame cut in the middle, when
``a`` is killed and ``b`` gives up the write to move the session (at once: see
`tests.test_slow_move`). The client must never get a frame inside another: whether its
session moved or it was dropped, every frame it reads is whole, and its token gets it
everything else, in order.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import cast

import attrs
import coredis
import orjson
import pytest
import trio

import trio_rooms
from trio_rooms._resp import RespConnection

from .attack_app import AttackRoom, attack_config, open_attack_node, serve_attack_rooms
from .redis_server import RedisServer
from .redis_witness import next_message, open_keyspace_events
from .sockets import CLOSE, TEXT, RawClient, client_frame, open_raw

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
#: Room ``game``'s replay log: every frame of a resumable session is in it.
LOG = b"trio_rooms:replay:game"
PATIENCE = 30.0
ECHOES = 80
#: Each echo is followed by a blob this large: the burst is far more than the sockets
#: hold (a few hundred KiB on loopback), and less than the replay log keeps (1 MiB).
BLOB = 10_000
#: What the slow client sends at once: the echoes, each followed by its blob.
BURST = b"".join(
    client_frame(TEXT, b'{"type": "echo", "n": %d}' % n)
    + client_frame(TEXT, b'{"type": "flood", "count": 1, "size": %d}' % BLOB)
    for n in range(ECHOES)
)

Message = dict[str, object]


@attrs.frozen
class SlowMove:
    """Nodes ``b`` and ``a`` as `open_slow_move` opens them."""

    rooms_b: trio_rooms.Rooms[AttackRoom]
    port_b: int
    process_a: trio.Process
    redis: coredis.Redis[bytes]
    logged: RespConnection
    """The keyspace events of the room's replay log (`LOG`)."""

    @asynccontextmanager
    async def open_client(self) -> AsyncGenerator[tuple[RawClient, Message, Message]]:
        """A resumable client of ``b`` with a small receive buffer, relayed to ``a``: it,
        its ``$session`` frame and ``a``'s welcome, read."""
        async with open_raw(self.port_b, GAME + "?resume=&seen=0", rcvbuf=4096) as client:
            session = cast("Message", orjson.loads(await client.receive_text())["$session"])
            welcome = cast("Message", orjson.loads(await client.receive_text()))
            assert welcome["node"] == "a"
            yield client, session, welcome

    async def burst_then_kill(self, client: RawClient) -> None:
        """``client`` sends `BURST` and reads nothing; once ``a`` has made every answer,
        ``a`` is killed with SIGKILL."""
        before = await self.redis.zcard(LOG)
        await client.send(BURST)
        # Every answer is logged on the owner (before it leaves): all were made.
        while await self.redis.zcard(LOG) < before + 2 * ECHOES:
            await next_message(self.logged)
        self.process_a.kill()


@asynccontextmanager
async def open_slow_move(
    redis_server: RedisServer, close_timeout: float
) -> AsyncGenerator[SlowMove]:
    """Node ``b`` in this process, with room in its queue for all of `BURST`'s answers
    and ``close_timeout``, and node ``a`` as a subprocess, owning room ``game`` (a client
    of its own holds it), on ``redis_server``."""
    url = redis_server.url
    config = attack_config(
        outbound_max_bytes=64 * 1024 * 1024,
        outbound_max_messages=10_000,
        slow_consumer_timeout=60.0,
        close_timeout=close_timeout,
    )
    async with (
        coredis.Redis.from_url(url) as redis,
        serve_attack_rooms(url, "b", config) as (rooms_b, port_b),
        open_attack_node(url, "a") as (process_a, port_a),
        open_raw(port_a, GAME) as owner,
        open_keyspace_events(redis_server, redis, [LOG], "z") as logged,
    ):
        assert orjson.loads(await owner.receive_text())["node"] == "a"
        yield SlowMove(rooms_b, port_b, process_a, redis, logged)


async def read_until_moved(client: RawClient) -> tuple[list[Message], int | None]:
    """Every text message until the connection ends or a welcome comes (the next
    owner's, the first read already), and the close code (None: no close frame, or
    moved). Fails on a frame that is not one whole message (one written into another)."""
    messages: list[Message] = []
    while (frame := await client.receive_frame()) is not None:
        if frame.opcode == CLOSE:
            return messages, frame.close_code
        if frame.opcode == TEXT:
            message = cast("Message", orjson.loads(frame.payload))
            messages.append(message)
            if message.get("type") == "welcome":
                return messages, None  # moved: the next owner's welcome came
    return messages, None


async def test_a_slow_relayed_client_whose_owner_dies_never_gets_a_frame_cut_in_two(
    redis_server: RedisServer,
) -> None:
    """A relayed client that reads nothing while its owner answers a burst of a megabyte,
    the owner killed (SIGKILL) before the client's node wrote it all: what the client
    reads is whole frames only (a session that cannot move on a cut frame is dropped,
    not moved), and resuming with its token gets every echo once, in order."""
    with trio.fail_after(PATIENCE):
        async with open_slow_move(redis_server, close_timeout=0.5) as slow:
            async with slow.open_client() as (client, session, welcome):
                await slow.burst_then_kill(client)
                # b found a silent, gave up writing to the client and ended the relay.
                await slow.rooms_b.wait_statistics(lambda stats: stats.relayed_sessions == 0)
                first, _ = await read_until_moved(client)
            messages = [welcome, *first]
            token = cast("str", session["token"])
            moved = [m["$session"] for m in first if "$session" in m]
            if moved:
                token = cast("str", cast("Message", moved[-1])["token"])
            seen = sum(1 for m in messages if "type" in m)
            async with open_raw(slow.port_b, f"{GAME}?resume={token}&seen={seen}") as back:
                again = cast("Message", orjson.loads(await back.receive_text())["$session"])
                assert (again["id"], again["resumed"]) == (session["id"], True), again
                await back.send_text(f'{{"type": "echo", "n": {ECHOES}}}')
                while (message := orjson.loads(await back.receive_text())).get("n") != ECHOES:
                    messages.append(message)
    echoes = [m["n"] for m in messages if m.get("type") == "echoed"]
    assert echoes == list(range(ECHOES)), echoes
    assert sum(1 for m in messages if m.get("type") == "blob") == ECHOES
