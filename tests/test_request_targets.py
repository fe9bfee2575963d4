"""Request targets in the forms RFC 9112 and RFC 3986 allow, the same on both transports.

A target in absolute form (RFC 9112 section 3.2.2) is routed as the path it names, and
a percent-encoded unreserved character in a room name, or anywhere in the path, is that
character (RFC 3986 section 6.2.2.2); any other encoded octet in a room name is refused,
with a 400 that says why, before any room exists, and elsewhere matches no route.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import pytest
import trio

import trio_rooms
from trio_rooms import Rooms, RoomsConfig
from trio_rooms._core.routing import split_room_path

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


@asynccontextmanager
async def _handshake(port: int, target: str) -> AsyncGenerator[tuple[int, bytes]]:
    """The status of a handshake for ``target`` and the welcome frame's payload if 101
    (else the response's body), its connection open meanwhile."""
    with trio.fail_after(GUARD):
        stream = await connect_socket(port)
        async with stream:
            await stream.send_all(handshake_request(target))
            status, _, rest = await read_http_response(stream)
            if status != 101:  # the refusal's body, up to the close that follows it
                while chunk := await stream.receive_some(65536):
                    rest += chunk
                yield status, rest
                return
            frame = await RawClient(stream, rest).receive_frame()  # the session runs
            assert frame is not None
            assert frame.opcode == TEXT, frame
            yield status, frame.payload


async def test_an_absolute_form_handshake_joins_the_room_its_path_names(
    admin_rooms: Rooms[AdminRoom], server: int
) -> None:
    target = f"ws://127.0.0.1:{server}/rooms/lobby/websocket?name=ann"
    async with _handshake(server, target) as (status, welcome):
        assert status == 101, welcome
        assert b"welcome ann" in welcome
        assert set(admin_rooms.statistics().by_room) == {"lobby"}


@pytest.mark.parametrize("scheme", ["http", "HTTP"])
async def test_an_absolute_form_route_request_reaches_its_route(server: int, scheme: str) -> None:
    result = await http(server, "GET", f"{scheme}://127.0.0.1:{server}/rooms/hall/echo?x=1")
    assert result.status == 201, result.body
    assert result.body == b"GET /rooms/hall/echo 1 t1"


# A room name with some of its characters percent-encoded, in either case, and the room.
EQUIVALENT = [
    ("%61bc", "abc"),
    ("%61%62%63", "abc"),
    ("a%7Ec", "a~c"),
    ("a%7ec", "a~c"),
    ("%41%42C", "ABC"),
    ("%2D%2e%5F%30", "-._0"),
]

# An encoded reserved, control or non-ASCII octet; no valid escape; a dot segment.
REFUSED = ["a%2Fb", "a%3Ab", "a%00b", "a%20b", "caf%C3%A9", "%G1", "a%2", "%", "%2E%2E", "%2561"]


@pytest.mark.parametrize(("segment", "room"), EQUIVALENT)
async def test_a_percent_encoded_unreserved_character_is_the_character(
    admin_rooms: Rooms[AdminRoom], server: int, segment: str, room: str
) -> None:
    async with _handshake(server, f"/rooms/{segment}/websocket?name=ann") as (status, welcome):
        assert status == 101, welcome
        assert set(admin_rooms.statistics().by_room) == {room}
    result = await http(server, "GET", f"/rooms/{segment}/echo?x=1")
    assert result.status == 201, result.body
    assert result.body == f"GET /rooms/{room}/echo 1 t1".encode()  # in its normal form


@pytest.mark.parametrize("segment", REFUSED)
async def test_any_other_percent_encoding_in_a_room_name_is_refused(
    admin_rooms: Rooms[AdminRoom], server: int, segment: str
) -> None:
    async with _handshake(server, f"/rooms/{segment}/websocket") as (status, body):
        assert status == 400, body
        assert body.decode() == f"invalid room name {segment!r}: {_EXPECTED}"
    result = await http(server, "GET", f"/rooms/{segment}/echo")
    assert result.status == 400, result.body
    assert result.body.decode() == f"invalid room name {segment!r}: {_EXPECTED}"
    assert not admin_rooms.statistics().by_room


_EXPECTED = "expected 1-128 of A-Z a-z 0-9 _ . ~ -"


# A path with percent-encoded unreserved characters outside the room name, or in it too:
# the handshake's path, and a route's path in the same room.
ENCODED_PATHS = [
    ("/rooms/lobby/%77ebsocket", "/rooms/lobby/%65cho"),
    ("/%72oom%73/lobby/websocke%74", "/%72oom%73/lobby/ech%6F"),
    ("/rooms/lob%62y/%77ebsocket", "/rooms/lob%62y/%65%63%68%6f"),
]


@pytest.mark.parametrize(("handshake", "route"), ENCODED_PATHS)
async def test_a_percent_encoded_unreserved_character_in_the_path_is_the_character(
    admin_rooms: Rooms[AdminRoom], server: int, handshake: str, route: str
) -> None:
    async with _handshake(server, handshake + "?name=ann") as (status, welcome):
        assert status == 101, welcome
        assert b"welcome ann" in welcome
        assert set(admin_rooms.statistics().by_room) == {"lobby"}
    result = await http(server, "GET", route + "?x=1")
    assert result.status == 201, result.body
    assert result.body == b"GET /rooms/lobby/echo 1 t1"  # in its normal form


@pytest.mark.parametrize(
    "target", ["/rooms/lobby/websocket%2F", "/rooms/lobby/%2Fwebsocket", "/rooms%2Flobby/websocket"]
)
async def test_a_reserved_character_encoded_in_the_path_is_not_the_character(
    admin_rooms: Rooms[AdminRoom], server: int, target: str
) -> None:
    async with _handshake(server, target) as (status, body):
        assert status == 404, body
    assert (await http(server, "GET", target.replace("websocket", "echo"))).status == 404
    assert not admin_rooms.statistics().by_room


@pytest.mark.parametrize(
    ("prefix", "path", "split"),
    [
        ("", "/x/%65cho", ("x", "/echo")),
        ("", "/x", None),
        ("/api/v1", "/ap%69/v%31/%61b/e/f", ("%61b", "/e/f")),  # the room as sent
        ("/api/v1", "/api%2Fv1/x/echo", None),
        ("/api/v1", "/api/x/echo", None),
    ],
)
def test_a_path_splits_at_its_prefix_and_room_whatever_the_prefix(
    prefix: str, path: str, split: tuple[str, str] | None
) -> None:
    assert split_room_path(prefix, path) == split
