"""Relayed sessions at their edges: a client lost during a move, a send to a gone client.

Node ``a`` (the room's first owner) runs `tests.owner_app` in a subprocess so that it
can be killed; the other nodes run in this process, so their statistics can be read.
All on one real redis-server; clients are raw WebSocket clients.
"""

from __future__ import annotations

from typing import cast

import coredis
import orjson
import pytest
import trio

import trio_rooms

from .owner_app import open_owner_node, serve_owner_rooms
from .redis_server import RedisServer
from .sockets import RawClient, open_raw
from .test_routes import HttpResult, http

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
PATIENCE = 30.0

Message = dict[str, object]


async def _receive(client: RawClient) -> Message:
    return cast("Message", orjson.loads(await client.receive_text()))


def _config(handshake_timeout: float = 10.0) -> trio_rooms.RoomsConfig:
    return trio_rooms.RoomsConfig(
        rate_limit=None, max_connections_per_address=10_000, handshake_timeout=handshake_timeout
    )


async def _keep_lease(redis: coredis.Redis[bytes]) -> None:
    """Keep room ``game``'s lease from lapsing, as if its dead owner still renewed it."""
    assert await redis.pexpire(b"trio_rooms:lease:game", 60_000)


async def test_a_client_lost_while_its_session_moves_resumes_it_with_its_token(
    redis_server: RedisServer,
) -> None:
    """A relayed client whose socket is reset while its node moves its session (its owner
    killed, its lease not lapsed yet) keeps its session: its own token resumes it on
    another node with every acknowledged write, and no node keeps a relay of it."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            coredis.Redis.from_url(url) as redis,
            open_owner_node(url, "a") as (process_a, port_a),
            serve_owner_rooms(url, "b", _config(handshake_timeout=3.0)) as (rooms_b, port_b),
            serve_owner_rooms(url, "c") as (rooms_c, port_c),
            open_raw(port_a, GAME) as on_a,
        ):
            assert (await _receive(on_a))["node"] == "a"
            async with open_raw(port_b, GAME + "?resume=&seen=0") as client:
                session = cast("Message", (await _receive(client))["$session"])
                assert (await _receive(client))["node"] == "a"
                for n in (1, 2, 3):
                    await client.send_text('{"type": "add"}')
                    assert (await _receive(client))["stored"] == n
                process_a.kill()
                await process_a.wait()
                await _keep_lease(redis)
                # b found a silent: it moves the session, waiting for the lease to lapse.
                await rooms_b.wait_statistics(lambda stats: stats.relayed_sessions == 0)
                client.reset()
            await redis.delete([b"trio_rooms:lease:game"])
            # b is done with the client once its connection is not counted any more.
            await rooms_b.wait_statistics(lambda stats: stats.connections == 0)
            assert rooms_b.statistics().relayed_sessions == 0
            resource = f"{GAME}?resume={session['token']}&seen=4"
            async with open_raw(port_c, resource) as back:
                again = cast("Message", (await _receive(back))["$session"])
                assert (again["id"], again["resumed"], again["replayed"]) == (
                    session["id"],
                    True,
                    0,
                )
                welcome = await _receive(back)
                assert (welcome["node"], welcome["starts"]) in {("b", 2), ("c", 2)}
                await back.send_text('{"type": "add"}')
                assert (await _receive(back))["stored"] == 4
            for rooms in (rooms_b, rooms_c):
                await rooms.wait_statistics(
                    lambda stats: (stats.connections, stats.relayed_sessions) == (0, 0)
                )


async def _printed(process: trio.Process, *lines: bytes) -> None:
    """Wait until ``process`` has printed each of ``lines``, in any order."""
    assert process.stdout is not None
    printed = b""
    while not all(line in printed for line in lines):
        chunk = await process.stdout.receive_some()
        assert chunk, "the node exited"
        printed += chunk


async def test_a_route_whose_owner_is_killed_mid_request_is_retried_only_if_safe(
    redis_server: RedisServer,
) -> None:
    """Requests relayed through b wait in handlers of a's rooms when a is killed: the GET
    is asked again of the room's next owner and answered by it, the POST (which may have
    run) gets 503 with Retry-After."""
    url = redis_server.url
    answers: dict[str, HttpResult] = {}

    async def ask(method: str, room: str) -> None:
        answers[method] = await http(port_b, method, f"/rooms/{room}/slow")

    with trio.fail_after(PATIENCE):
        async with (
            open_owner_node(url, "a") as (process_a, port_a),
            serve_owner_rooms(url, "b") as (_, port_b),
            open_raw(port_a, GAME) as on_a,
            open_raw(port_a, "/rooms/other/websocket") as other_on_a,
        ):
            # A room's events are one at a time: one waiting request per room.
            for client in (on_a, other_on_a):
                assert (await _receive(client))["node"] == "a"
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, "GET", "game")
                nursery.start_soon(ask, "POST", "other")
                await _printed(process_a, b"WAITING GET\n", b"WAITING POST\n")
                process_a.kill()
    assert answers["GET"].status == 200
    assert answers["GET"].json() == {"node": "b", "starts": 2}
    assert answers["POST"].status == 503
    assert answers["POST"].headers["retry-after"] == "1"


@pytest.mark.parametrize("where", ["local", "relayed"])
async def test_a_send_by_id_to_a_client_reset_mid_send_ends_its_session_as_a_local_one(
    redis_server: RedisServer, where: str
) -> None:
    """Sending by id from the owner's handler, on and on, to a session whose client's socket
    is reset meanwhile raises nothing in the handler, and the session ends once, with 1006,
    whether its client was on the owner or on another node."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a", _config()) as (rooms_a, port_a),
            serve_owner_rooms(url, "b", _config()) as (rooms_b, port_b),
            open_raw(port_a, GAME) as sender,
        ):
            assert await _receive(sender) == {"type": "welcome", "node": "a", "starts": 1}
            room = await rooms_a.get("game")
            port = port_b if where == "relayed" else port_a
            async with open_raw(port, GAME + "?resume=") as target:
                session = cast("dict[str, object]", (await _receive(target))["$session"])
                assert (await _receive(target))["node"] == "a"
                target_id = session["id"]
                assert target_id in room.sessions
                to = {"type": "sendTo", "session": target_id, "size": 1000}
                await sender.send_text(orjson.dumps(to).decode())
                assert (await _receive(target))["type"] == "blob"
                target.reset()
            sent = await _receive(sender)
            assert sent["type"] == "sent"
            stats = await rooms_a.wait_statistics(lambda stats: stats.closes.get(1006) == 1)
            await rooms_b.wait_statistics(lambda stats: stats.relayed_sessions == 0)
            assert room.closes == [1006]
            assert (stats.sessions, stats.errors, dict(stats.closes)) == (1, 0, {1006: 1})
