"""Request targets in the forms RFC 9112 and RFC 3986 allow, the same on both transports.

A target in absolute form (RFC 9112 section 3.2.2) is routed as the path it names, and
a percent-encoded unreserved character in a room name is that character (RFC 3986
section 6.2.2.2); any other encoded octet in a room name is refused, with a 400 that
says why, before any room exists.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
import trio

import trio_rooms
from trio_rooms import Rooms, RoomsConfig

from .routes_app import AdminRoom
from .servers import Transport, start_server
from .sockets import TEXT, RawClient, connect_socket, handshake_request, read_http_response
from .test_routes import http

GUARD = 10.0


@pytest.fixture
async def admin_rooms(config: RoomsConfig) -> AsyncGenerator[Rooms[AdminRoom]]:
    async with trio_rooms.open_rooms(AdminRoom, config=config) as rooms:
        yield rooms


@pytest.fixture
async def server(admin_rooms: Rooms[AdminRoom], nursery: trio.Nursery, transport: Transport) -> int:
    return await start_server(nursery, transport, admin_rooms)


async def _handshake(port: int, target: str) -> tuple[int, bytes]:
    """The status of a handshake for ``target``; the welcome frame's payload if 101."""
    with trio.fail_after(GUARD):
        stream = await connect_socket(port)
        async with stream:
            await stream.send_all(handshake_request(target))
            status, head, rest = await read_http_response(stream)
            if status != 101:
                return status, head
            frame = await RawClient(stream, rest).receive_frame()  # the session runs
            assert frame is not None
            assert frame.opcode == TEXT, frame
            return status, frame.payload


async def test_an_absolute_form_handshake_joins_the_room_its_path_names(
    admin_rooms: Rooms[AdminRoom], server: int
) -> None:
    status, welcome = await _handshake(
        server, f"ws://127.0.0.1:{server}/rooms/lobby/websocket?name=ann"
    )
    assert status == 101, welcome
    assert b"welcome ann" in welcome
    assert set(admin_rooms.statistics().by_room) == {"lobby"}


@pytest.mark.parametrize("scheme", ["http", "HTTP"])
async def test_an_absolute_form_route_request_reaches_its_route(server: int, scheme: str) -> None:
    result = await http(server, "GET", f"{scheme}://127.0.0.1:{server}/rooms/hall/echo?x=1")
    assert result.status == 201, result.body
    assert result.body == b"GET /rooms/hall/echo 1 t1"
