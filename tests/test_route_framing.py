"""A route's own framing headers never frame its response: the transport's do.

A route that returns ``transfer-encoding: chunked`` over a whole body, or a
``content-length`` of its own, would otherwise make the client (or a proxy in front)
read its body wrong and the rest of the connection as the next response. Both transports
write one ``content-length``, the body's, and no ``transfer-encoding``.
"""

from __future__ import annotations

import pytest
import trio

import trio_rooms
from trio_rooms import HttpRequest, Response, Room, RoomsConfig, route

from .chat_app import ChatSession
from .servers import Transport, start_server
from .sockets import http_get

PATIENCE = 10.0


class FramingRoom(Room[ChatSession]):
    @route.get("/framed")
    async def framed(self, request: HttpRequest) -> Response:
        name = request.query.get("name", "transfer-encoding")
        value = request.query.get("value", "chunked")
        return Response(200, ((name, value), ("x-kept", "yes")), b"whole body")


@pytest.mark.parametrize(
    "query",
    [
        "name=transfer-encoding&value=chunked",
        "name=Transfer-Encoding&value=gzip,%20chunked",
        "name=content-length&value=999",
        "name=Content-Length&value=0",
    ],
)
async def test_a_routes_framing_headers_are_replaced_by_the_bodys_length(
    nursery: trio.Nursery, transport: Transport, query: str
) -> None:
    async with trio_rooms.open_rooms(FramingRoom, config=RoomsConfig()) as rooms:
        port = await start_server(nursery, transport, rooms)
        with trio.fail_after(PATIENCE):
            answer = await http_get(port, f"/rooms/r/framed?{query}")
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = [line.lower() for line in head.split(b"\r\n")[1:]]
    assert head.startswith(b"HTTP/1.1 200 "), answer
    assert body == b"whole body", answer
    assert [line for line in lines if line.startswith(b"content-length:")] == [
        b"content-length: 10"
    ], answer
    assert not [line for line in lines if line.startswith(b"transfer-encoding:")], answer
    assert b"x-kept: yes" in lines, answer
