"""Route requests to a room another node owns are answered by the owner, as its own are.

Two nodes of `tests.fanout_app` in this process on one real redis-server; node ``a``
owns room ``fan`` (its client comes first); requests go to ``b`` over real sockets.
"""

from __future__ import annotations

import pytest
import trio

import trio_rooms

from .fanout_app import open_fanout_node
from .redis_server import EVERY_URL, RedisServer
from .sockets import connect_socket, open_raw, read_http_response
from .test_routes import HttpResult, http

pytestmark = pytest.mark.slow

FAN = "/rooms/fan/websocket"
PATIENCE = 20.0


def _seen(result: HttpResult) -> tuple[int, str | None, bytes]:
    return result.status, result.headers.get("content-type"), result.body


async def test_a_route_of_a_room_owned_elsewhere_is_answered_by_its_owner(
    redis_server: RedisServer,
) -> None:
    """Through node b, every route of a's room answers with the status, headers and body
    a itself gives (a handler's, a failing one's 500, a bad body's 400), from a's room."""
    url = redis_server.url
    requests = [
        ("GET", "/rooms/fan/info", b"", "application/json"),
        ("GET", "/rooms/fan/teapot?x=1", b"", None),
        ("GET", "/rooms/fan/boom", b"", None),
        ("POST", "/rooms/fan/shout", b'{"n": "seven"}', "application/json"),
        ("POST", "/rooms/fan/shout", b'{"n": 7}', "text/plain"),
        ("POST", "/rooms/fan/info", b"", None),
        ("GET", "/rooms/fan/nowhere", b"", None),
    ]
    with trio.fail_after(PATIENCE):
        async with (
            open_fanout_node(url, "a") as (_, port_a),
            open_fanout_node(url, "b") as (rooms_b, port_b),
            open_raw(port_a, FAN) as on_a,
        ):
            assert await on_a.receive_json() == {"type": "hello", "node": "a"}
            for method, target, body, content_type in requests:
                at_a = await http(port_a, method, target, body, content_type=content_type)
                at_b = await http(port_b, method, target, body, content_type=content_type)
                assert _seen(at_b) == _seen(at_a), target
            teapot = await http(port_b, "GET", "/rooms/fan/teapot?x=1")
            assert (teapot.status, teapot.body) == (418, b"GET /rooms/fan/teapot 1 t1")
            assert teapot.headers["x-node"] == "a"
            info = await http(port_b, "GET", "/rooms/fan/info")
            assert info.json() == {"node": "a", "sessions": 1, "shouts": 0}
            assert rooms_b.statistics().rooms == 0


@EVERY_URL
async def test_a_relayed_route_call_is_an_event_of_the_owners_room(
    redis_server: RedisServer,
) -> None:
    """A POST through node b writes in a's room and answers once the write is durable;
    its broadcast reaches the clients of both nodes."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            open_fanout_node(url, "a") as (rooms_a, port_a),
            open_fanout_node(url, "b") as (_, port_b),
            open_raw(port_a, FAN) as on_a,
            open_raw(port_b, FAN) as on_b,
        ):
            for client in (on_a, on_b):
                assert await client.receive_json() == {"type": "hello", "node": "a"}
            for n in (1, 2):
                result = await http(port_b, "POST", "/rooms/fan/shout", b'{"n": %d}' % n)
                assert result.json() == {"node": "a", "sessions": 2, "shouts": n}
                for client in (on_a, on_b):
                    assert await client.receive_json() == {"type": "said", "n": n}
            room = await rooms_a.get("fan")
            assert await room.storage.get("shouts", int) == 2


async def test_a_relayed_route_request_keeps_the_receiving_nodes_limits(
    redis_server: RedisServer,
) -> None:
    """A body over max_message_size sent to node b gets b's 413 (the owner never sees it),
    as it would on the owner."""
    url = redis_server.url
    config = trio_rooms.RoomsConfig(
        rate_limit=None, max_connections_per_address=10_000, max_message_size=1024
    )
    body = b'{"n": 1, "pad": "%s"}' % (b"x" * 2048)
    with trio.fail_after(PATIENCE):
        async with (
            open_fanout_node(url, "a", config) as (rooms_a, port_a),
            open_fanout_node(url, "b", config) as (_, port_b),
            open_raw(port_a, FAN) as on_a,
        ):
            assert await on_a.receive_json() == {"type": "hello", "node": "a"}
            at_a = await http(port_a, "POST", "/rooms/fan/shout", body)
            at_b = await http(port_b, "POST", "/rooms/fan/shout", body)
            assert _seen(at_b) == _seen(at_a)
            assert at_b.status == 413
            assert at_b.headers["connection"] == "close"
            assert (await rooms_a.get("fan")).shouts == 0


async def _stalled(port: int) -> tuple[int, bytes, bytes]:
    """A POST whose body stops after 2 of its 40 bytes: the status, head and body it gets."""
    async with await connect_socket(port) as stream:
        await stream.send_all(
            b"POST /rooms/fan/shout HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b'content-type: application/json\r\ncontent-length: 40\r\n\r\n{"'
        )
        status, head, rest = await read_http_response(stream)
        while chunk := await stream.receive_some(65536):
            rest += chunk
        return status, head, rest


async def test_a_relayed_route_body_too_slow_gets_the_receiving_nodes_408(
    redis_server: RedisServer,
) -> None:
    """A body that stops arriving at node b gets b's 408 and body once request_timeout has
    passed, as on the owner, and the owner's route never runs."""
    url = redis_server.url
    config = trio_rooms.RoomsConfig(
        rate_limit=None, max_connections_per_address=10_000, request_timeout=0.5
    )
    with trio.fail_after(PATIENCE):
        async with (
            open_fanout_node(url, "a", config) as (rooms_a, port_a),
            open_fanout_node(url, "b", config) as (_, port_b),
            open_raw(port_a, FAN) as on_a,
        ):
            assert await on_a.receive_json() == {"type": "hello", "node": "a"}
            at_a, at_b = await _stalled(port_a), await _stalled(port_b)
            assert (at_b[0], at_b[2]) == (at_a[0], at_a[2])
            assert at_b[0] == 408
            assert b"connection: close" in at_b[1].lower()
            assert (await rooms_a.get("fan")).shouts == 0
