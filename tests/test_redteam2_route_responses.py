"""A route's answer built from what a client sent cannot split or break the HTTP response.

A handler that echoes a query value into a header (a redirect's ``location``, say)
hands the server a CR LF, a NUL or a character HTTP/1.1 cannot carry; a status or
header name can come out wrong too. Written as given, the embedded server's answer
would carry the client's own headers (response splitting) or fail mid-write. Every
such answer is a logged 500 instead, on both transports, as a value that cannot be
encoded is.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import pytest
import trio

import trio_rooms
from trio_rooms import HttpRequest, Response, Room, Rooms, RoomsConfig, route
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .chat_app import ChatSession
from .redis_server import RedisServer
from .servers import Transport, start_server
from .sockets import http_get

PATIENCE = 10.0


class EchoingRoom(Room[ChatSession]):
    @route.get("/go")
    async def go(self, request: HttpRequest) -> Response:
        # What a careless app does: the client's value, as it came, in a header.
        return Response(302, (("location", request.query.get("to", "/")),))

    @route.get("/named")
    async def named(self, request: HttpRequest) -> Response:
        return Response(200, ((request.query.get("name", "x-name"), "1"),), b"named")

    @route.get("/status")
    async def status(self, request: HttpRequest) -> Response:
        return Response(int(request.query.get("code", "200")), (), b"status")


def _assert_one_500(answer: bytes) -> None:
    """``answer`` is one plain 500, with nothing of the client's in it."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 "), answer
    assert b"stolen" not in answer, answer
    assert answer.count(b"HTTP/1.1") == 1, answer
    assert body == b"Internal Server Error", answer


def _assert_redirected(answer: bytes, to: bytes) -> None:
    assert answer.startswith(b"HTTP/1.1 302 "), answer
    assert b"\r\nlocation: " + to + b"\r\n" in answer, answer


ATTACKS = [
    # CR LF: the client's own header, and a second response after it.
    "/rooms/r/go?to=/x%0d%0aset-cookie:%20stolen=1%0d%0a%0d%0aHTTP/1.1%20200%20OK",
    "/rooms/r/go?to=/x%0aset-cookie:%20stolen=1",  # a bare LF
    "/rooms/r/go?to=/x%0dset-cookie:%20stolen=1",  # a bare CR
    "/rooms/r/go?to=/x%00y",  # NUL
    "/rooms/r/go?to=/%E2%82%AC",  # not latin-1: the euro sign
    "/rooms/r/named?name=set-cookie:%20stolen",  # a name that is no token
    "/rooms/r/named?name=",  # an empty name
    "/rooms/r/status?code=101",  # no final status
    "/rooms/r/status?code=99",
    "/rooms/r/status?code=1000",
]


@pytest.mark.parametrize("target", ATTACKS)
async def test_a_route_answer_http_cannot_carry_is_a_logged_500(
    nursery: trio.Nursery, transport: Transport, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with trio_rooms.open_rooms(EchoingRoom, config=RoomsConfig()) as rooms:
        port = await start_server(nursery, transport, rooms)
        with trio.fail_after(PATIENCE):
            _assert_one_500(await http_get(port, target))
            # The server serves on.
            _assert_redirected(await http_get(port, "/rooms/r/go?to=/fine"), b"/fine")
        assert any(
            record.levelno == logging.ERROR and "route GET /rooms/r/" in record.getMessage()
            for record in caplog.records
        ), caplog.text


@asynccontextmanager
async def _node(url: str, node: str) -> AsyncGenerator[tuple[Rooms[EchoingRoom], int]]:
    """Node ``node`` of a cluster on the Redis at ``url``, served on a free port."""
    cluster = RedisCluster(url, node_id=node, lease_ttl=1.5, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            EchoingRoom, config=RoomsConfig(), storage=RedisStorage(url), cluster=cluster
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_a_relayed_route_answer_http_cannot_carry_is_the_owners_500(
    redis_server: RedisServer,
) -> None:
    """Through a node that does not own the room, the answer is the owner's 500 too: the
    client's CR LF neither splits the relaying node's response nor breaks its relay."""
    url = redis_server.url
    with trio.fail_after(PATIENCE * 2):
        async with _node(url, "a") as (_, port_a), _node(url, "b") as (rooms_b, port_b):
            # a owns the room from now on.
            _assert_redirected(await http_get(port_a, "/rooms/r/go?to=/a"), b"/a")
            for target in ATTACKS:
                _assert_one_500(await http_get(port_b, target))
            _assert_redirected(await http_get(port_b, "/rooms/r/go?to=/fine"), b"/fine")
            assert rooms_b.statistics().rooms == 0  # b relayed every request


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/rooms/r/go?to=/caf%C3%A9", "/café".encode("latin-1")),  # obs-text: latin-1
        ("/rooms/r/go?to=/a%20b%09c", b"/a b\tc"),  # inner space and tab
        ("/rooms/r/go?to=", b""),  # an empty value
    ],
)
async def test_a_route_answer_http_can_carry_is_written_as_it_is(
    nursery: trio.Nursery, transport: Transport, target: str, location: bytes
) -> None:
    async with trio_rooms.open_rooms(EchoingRoom, config=RoomsConfig()) as rooms:
        port = await start_server(nursery, transport, rooms)
        with trio.fail_after(PATIENCE):
            answer = await http_get(port, target)
            assert answer.startswith(b"HTTP/1.1 302 "), answer
            assert b"\r\nlocation: " + location + b"\r\n" in answer, answer
