"""HTTP routes on rooms, on both transports, and the lifespan-owned ASGI app, on 127.0.0.1."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from functools import partial
from typing import Any, cast

import h11
import hypercorn.trio
import orjson
import pytest
import trio
import trio_websocket

import trio_rooms
from trio_rooms import HttpRequest, Response, Room, Rooms, RoomsConfig, route
from trio_rooms._core.routes import route_table

from .chat_app import ChatRoom, SendChat, UserJoined
from .peer import Peer, connect
from .routes_app import AdminRoom, MemberSession
from .servers import Transport, start_server
from .sockets import connect_socket, handshake_request, read_http_response


@pytest.fixture
async def admin_rooms(config: RoomsConfig) -> AsyncGenerator[Rooms[AdminRoom]]:
    async with trio_rooms.open_rooms(AdminRoom, config=config) as rooms:
        yield rooms


@pytest.fixture
async def http_port(
    admin_rooms: Rooms[AdminRoom], nursery: trio.Nursery, transport: Transport
) -> int:
    return await start_server(nursery, transport, admin_rooms)


class HttpResult:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


async def http(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    origin: str | None = None,
) -> HttpResult:
    """One HTTP/1.1 request with h11 on a fresh connection (``content_type`` if a body)."""
    connection = h11.Connection(h11.CLIENT)
    headers = [("host", "127.0.0.1"), ("connection", "close"), ("x-tag", "t1")]
    headers.append(("content-length", str(len(body))))
    if body and content_type is not None:
        headers.append(("content-type", content_type))
    if origin is not None:
        headers.append(("origin", origin))
    out = [connection.send(h11.Request(method=method, target=target, headers=headers))]
    if body:
        out.append(connection.send(h11.Data(data=body)))
    out.append(connection.send(h11.EndOfMessage()))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"".join(out))
        status, response_headers, data = 0, dict[str, str](), b""
        with trio.fail_after(5):
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    response_headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    data += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return HttpResult(status, response_headers, data)


async def joined(peer: Peer) -> str:
    """Wait for the welcome frame that proves the session was admitted."""
    frame = await peer.receive_text()
    assert frame.startswith('{"type":"admin","message":"welcome ')
    return frame


async def test_info_returns_the_sessions_and_their_data(http_port: int) -> None:
    """POST /info returns the session count and each session's data, in lowerCamelCase."""
    async with (
        connect(http_port, "hall", "name=ann") as ann,
        connect(http_port, "hall", "name=bo") as bo,
    ):
        await joined(ann)
        await joined(bo)
        result = await http(http_port, "POST", "/rooms/hall/info")
    assert result.status == 200
    assert result.headers["content-type"] == "application/json"
    info: dict[str, Any] = result.json()
    assert info["sessionCount"] == 2
    sessions: list[dict[str, dict[str, str]]] = info["sessions"]
    assert sorted(session["data"]["name"] for session in sessions) == ["ann", "bo"]


async def test_broadcast_pushes_to_every_session(http_port: int) -> None:
    """POST /broadcast sends an admin message to every session and returns {"success": true}."""
    async with connect(http_port, "hall") as one, connect(http_port, "hall") as two:
        await joined(one)
        await joined(two)
        result = await http(http_port, "POST", "/rooms/hall/broadcast", b'{"message":"hi all"}')
        assert (result.status, result.json()) == (200, {"success": True})
        expected = '{"type":"admin","message":"hi all"}'
        assert await one.receive_text() == expected
        assert await two.receive_text() == expected


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"message": 5}', "expected str @ $.message"),
        (b"{}", "required field missing @ $.message"),
        (b'{"message": "x", "urgent_level": 1}', "extra fields found (urgent_level) @ $"),
        (b'{"message": "x", "urgentLevel": "high"}', "expected int @ $.urgentLevel"),
        (b"[1]", "expected an object @ $"),
    ],
)
async def test_an_invalid_body_gets_400_with_the_reason(
    http_port: int, body: bytes, error: str
) -> None:
    """A body that does not fit the declared attrs class gets 400 {"error": reason with path}."""
    result = await http(http_port, "POST", "/rooms/hall/broadcast", body)
    assert (result.status, result.json()) == (400, {"error": error})


async def test_a_body_that_is_not_json_gets_400(http_port: int) -> None:
    """Invalid JSON is a 400 too, with the parser's reason."""
    result = await http(http_port, "POST", "/rooms/hall/broadcast", b"not json")
    assert result.status == 400
    error: dict[str, str] = result.json()
    assert error["error"].startswith("invalid JSON")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/json, text/plain",
        "application/+json",
        "text/json",
        None,
    ],
)
async def test_a_body_that_is_not_sent_as_json_gets_415_and_the_route_does_not_run(
    http_port: int, admin_rooms: Rooms[AdminRoom], content_type: str | None
) -> None:
    """A body route refuses what a cross-site form or text/plain fetch sends with 415."""
    body = b'{"message":"forged"}'
    result = await http(http_port, "POST", "/rooms/hall/broadcast", body, content_type=content_type)
    assert result.status == 415
    assert result.json() == {"error": "Unsupported Media Type: send the body as application/json"}
    assert admin_rooms.statistics().rooms == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON ; Charset=UTF-8",
        "application/vnd.api+json",
        "application/merge-patch+json",
    ],
)
async def test_json_and_structured_json_bodies_are_taken(http_port: int, content_type: str) -> None:
    """application/json, with parameters and in any case, and application/*+json run the route."""
    body = b'{"message":"hi"}'
    result = await http(http_port, "POST", "/rooms/hall/broadcast", body, content_type=content_type)
    assert (result.status, result.json()) == (200, {"success": True})


async def test_routes_without_a_body_type_are_not_held_to_json(http_port: int) -> None:
    """A route without a body type takes text/plain; a body route sent no body still gets 400."""
    echo = await http(http_port, "PUT", "/rooms/hall/echo", b"plain", content_type="text/plain")
    assert echo.status == 201
    empty = await http(http_port, "POST", "/rooms/hall/broadcast", content_type="text/plain")
    assert empty.status == 400
    error: dict[str, str] = empty.json()
    assert error["error"].startswith("invalid JSON")


ALLOWED = RoomsConfig(allowed_origins={"https://chat.example"})


@pytest.mark.parametrize("config", [ALLOWED])
@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", "/rooms/hall/broadcast", b'{"message":"forged"}'),
        ("POST", "/rooms/hall/info", b""),
        ("GET", "/rooms/hall/echo", b""),
    ],
)
async def test_a_foreign_origin_gets_403_before_the_room_exists(
    http_port: int, admin_rooms: Rooms[AdminRoom], method: str, target: str, body: bytes
) -> None:
    """With allowed_origins, a route request from another Origin gets 403 and creates no room."""
    for origin in ("https://evil.example", "null", "https://chat.example.evil.example"):
        result = await http(http_port, method, target, body, origin=origin)
        assert (result.status, result.body) == (403, b"Forbidden: this origin is not allowed")
    assert admin_rooms.statistics().rooms == 0


@pytest.mark.parametrize("config", [ALLOWED])
@pytest.mark.parametrize("origin", ["https://chat.example", "HTTPS://Chat.Example/", None])
async def test_an_allowed_origin_or_none_runs_the_route(http_port: int, origin: str | None) -> None:
    """An allowed Origin (normalised as for WebSockets) or no Origin at all reaches the route."""
    body = b'{"message":"hi"}'
    result = await http(http_port, "POST", "/rooms/hall/broadcast", body, origin=origin)
    assert (result.status, result.json()) == (200, {"success": True})


async def test_unknown_routes_get_404_and_wrong_methods_405_without_creating_the_room(
    http_port: int, admin_rooms: Rooms[AdminRoom]
) -> None:
    """404 for an unknown path, 405 with Allow for a known one; neither creates the room."""
    missing = await http(http_port, "GET", "/rooms/hall/nothing")
    assert missing.status == 404
    wrong_method = await http(http_port, "GET", "/rooms/hall/info")
    assert wrong_method.status == 405
    assert wrong_method.headers["allow"] == "POST"
    echo_method = await http(http_port, "DELETE", "/rooms/hall/echo")
    assert echo_method.headers["allow"] == "GET, PUT"
    assert (await http(http_port, "POST", "/rooms/bad%20name/info")).status == 400
    assert (await http(http_port, "POST", "/rooms/hall")).status == 404
    assert (await http(http_port, "POST", "/elsewhere/hall/info")).status == 404
    # Known once decoded (RFC 3986 6.2.2.2), so 405 and 400 too, not 404.
    assert (await http(http_port, "GET", "/rooms/hall/%69nfo")).status == 405
    assert (await http(http_port, "GET", "/rooms/hall/%77ebsocket")).body == b"Expected websocket"
    assert admin_rooms.statistics().rooms == 0


async def test_a_route_path_with_percent_encoded_unreserved_characters_is_the_route(
    http_port: int,
) -> None:
    """The route's path is compared decoded, the room's prefix too; the route sees it in
    its normal form. Reserved characters stay encoded: ``%2F`` is no ``/``."""
    for target in ("/rooms/hall/%65cho", "/rooms/hall/%65%63%68%6f", "/%72ooms/h%61ll/echo"):
        result = await http(http_port, "GET", target + "?x=1")
        assert (result.status, result.body) == (201, b"GET /rooms/hall/echo 1 t1"), target
    for target in ("/rooms/hall/echo%2F", "/rooms/hall/%2Fecho", "/rooms%2Fhall/echo"):
        assert (await http(http_port, "GET", target)).status == 404, target
    assert (await http(http_port, "GET", "/rooms/hall/%2565cho")).status == 404  # decoded once


async def test_a_route_creates_its_room(http_port: int, admin_rooms: Rooms[AdminRoom]) -> None:
    """A route on a room that does not exist yet creates it."""
    result = await http(http_port, "POST", "/rooms/fresh/info")
    assert (result.status, result.json()) == (200, {"sessionCount": 0, "sessions": []})
    assert admin_rooms.statistics().rooms == 1


async def test_a_route_to_a_new_room_past_max_rooms_gets_503(nursery: trio.Nursery) -> None:
    """Past the room cap a route request to a new room gets 503 and creates nothing; the
    live room still answers."""
    config = RoomsConfig(max_rooms=1)
    async with trio_rooms.open_rooms(AdminRoom, config=config) as rooms:
        port = await start_server(nursery, "hypercorn", rooms)
        assert (await http(port, "POST", "/rooms/first/info")).status == 200
        refused = await http(port, "POST", "/rooms/second/info")
        assert refused.status == 503
        assert refused.body == (
            b"Service Unavailable: the server is at its limit of 1 rooms (RoomsConfig.max_rooms)"
        )
        assert rooms.statistics().rooms == 1
        assert (await http(port, "POST", "/rooms/first/info")).status == 200
        nursery.cancel_scope.cancel()


async def test_a_response_is_sent_as_it_is(http_port: int) -> None:
    """A handler returning Response controls the status, headers and body; it sees the request."""
    result = await http(http_port, "PUT", "/rooms/hall/echo?x=1")
    assert result.status == 201
    assert result.headers["content-type"] == "text/plain; charset=utf-8"
    assert result.body == b"PUT /rooms/hall/echo 1 t1"


async def test_a_failing_route_gets_500_and_is_logged(
    http_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in a handler is logged and answered with 500; the server goes on."""
    assert (await http(http_port, "GET", "/rooms/hall/boom")).status == 500
    assert "route failed" in caplog.text
    assert (await http(http_port, "POST", "/rooms/hall/info")).status == 200


async def test_routes_are_inherited_and_overridden_by_name() -> None:
    """A subclass inherits its base's routes; redefining a method replaces its routes."""

    class Base(Room[MemberSession]):
        @route.get("/a")
        async def a(self, request: HttpRequest) -> Response:
            return Response()

        @route.get("/b")
        async def b(self, request: HttpRequest) -> Response:
            return Response()

    class Child(Base):
        async def b(self, request: HttpRequest) -> Response:  # no longer a route
            return Response()

    table = route_table(Child)
    assert sorted(table) == ["/a"]


def test_a_route_taken_twice_is_refused() -> None:
    """Two handlers for one method and path make the room class unusable, said at bind time."""

    class Twice(Room[MemberSession]):
        @route.get("/x")
        async def one(self, request: HttpRequest) -> Response:
            return Response()

        @route.get("/x")
        async def two(self, request: HttpRequest) -> Response:
            return Response()

    with pytest.raises(TypeError, match=r"one and two both handle GET /x"):
        trio_rooms.asgi_app(Twice)


async def test_the_lifespan_app_owns_its_rooms_and_closes_sessions_with_1001() -> None:
    """asgi_app opens its Rooms at startup; hypercorn's shutdown sends 1001, not 1006."""
    app = trio_rooms.asgi_app(AdminRoom)
    config = trio_rooms.hypercorn_config(trio_rooms.RoomsConfig(), "127.0.0.1:0")
    config.graceful_timeout = 0.2  # hypercorn waits this long for open connections
    stop = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            serve = partial(hypercorn.trio.serve, shutdown_trigger=stop.wait)
            binds: list[str] = await nursery.start(serve, app, config)
            port = int(binds[0].rpartition(":")[2])
            async with connect(port, "hall", "name=ann") as ann:
                await joined(ann)
                result = await http(port, "POST", "/rooms/hall/broadcast", b'{"message":"bye"}')
                assert result.status == 200
                assert await ann.receive_text() == '{"type":"admin","message":"bye"}'
                stop.set()
                assert await ann.close_code() == 1001


async def test_the_lifespan_app_refuses_requests_outside_its_lifespan() -> None:
    """Before lifespan.startup, HTTP gets 503 and a WebSocket is refused before its upgrade."""
    app = trio_rooms.asgi_app(AdminRoom)
    sent: list[object] = []

    async def send(message: object) -> None:
        sent.append(message)

    async def receive_request() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: dict[str, object] = {
        "type": "http",
        "method": "POST",
        "path": "/rooms/hall/info",
        "raw_path": b"/rooms/hall/info",
        "query_string": b"",
        "headers": [],
        "client": None,
    }
    await app(scope, receive_request, send)  # pyright: ignore[reportArgumentType] - a minimal scope
    assert sent[0] == {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"46"),
        ],
    }


async def test_websocket_rejections_use_the_http_response_extension(http_port: int) -> None:
    """Hypercorn offers websocket.http.response: an invalid target is answered as HTTP."""
    with pytest.raises(BaseExceptionGroup) as refused:
        async with connect(http_port, "bad%20name"):
            pass
    rejections = [
        e for e in _leaves(refused.value) if isinstance(e, trio_websocket.ConnectionRejected)
    ]
    assert [(e.status_code, (e.body or b"")[:17]) for e in rejections] == [
        (400, b"invalid room name")
    ]


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", error)
        return [leaf for inner in group.exceptions for leaf in _leaves(inner)]
    return [error]


@pytest.mark.parametrize("config", [RoomsConfig(max_message_size=1024)])
async def test_the_byte_limit_holds_where_hypercorn_counts_characters(
    rooms: Rooms[ChatRoom], nursery: trio.Nursery
) -> None:
    """Hypercorn counts text in characters; the ASGI connection still closes 1009 past the bytes."""
    port = await start_server(nursery, "hypercorn", rooms)
    async with connect(port, "lobby") as client:
        await client.receive_until(UserJoined)
        await client.send(SendChat(text="é" * 600))  # 600 characters, over 1200 bytes
        assert await client.close_code() == 1009
    room = await rooms.get("lobby")
    with trio.fail_after(5):
        assert await room.wait_closed(1) == [("anon", 1009)]


# ------------------------------------------------------------------------ limits


class GateRoom(Room[MemberSession]):
    """A room whose one route waits, once it has said it arrived, until it is released."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.arrivals, self.arrived = trio.open_memory_channel[None](math.inf)
        self.release = trio.Event()

    @route.post("/wait")
    async def wait(self, request: HttpRequest) -> Response:
        self.arrivals.send_nowait(None)
        async with self.unlocked():  # waiting on the outside: let the other calls in
            await self.release.wait()
        return Response.text(200, "released")


@pytest.fixture
async def gate_rooms(config: RoomsConfig) -> AsyncGenerator[Rooms[GateRoom]]:
    async with trio_rooms.open_rooms(GateRoom, config=config) as rooms:
        yield rooms


@pytest.mark.parametrize(
    ("config", "refusal"),
    [
        (
            RoomsConfig(max_connections_per_address=2),
            b"too many connections from 127.0.0.1 (at most 2)",
        ),
        (RoomsConfig(max_connections=2), b"the server is at its limit of 2 connections"),
    ],
)
async def test_route_requests_count_against_the_connection_caps(
    gate_rooms: Rooms[GateRoom], nursery: trio.Nursery, refusal: bytes
) -> None:
    """Two route requests that run hold both slots: a third request and a WebSocket get 503."""
    port = await start_server(nursery, "hypercorn", gate_rooms)
    room = await gate_rooms.get("hall")
    held: list[HttpResult] = []

    async def hold() -> None:
        held.append(await http(port, "POST", "/rooms/hall/wait"))

    async with trio.open_nursery() as holders:
        holders.start_soon(hold)
        holders.start_soon(hold)
        await room.arrived.receive()
        await room.arrived.receive()
        refused = await http(port, "POST", "/rooms/hall/wait")
        assert (refused.status, refused.body) == (503, b"Service Unavailable: " + refusal)
        stream = await connect_socket(port)
        async with stream:
            await stream.send_all(handshake_request("/rooms/hall/websocket"))
            assert (await read_http_response(stream))[0] == 503
        room.release.set()
    assert [(result.status, result.body) for result in held] == [(200, b"released")] * 2
    with trio.fail_after(5):
        await gate_rooms.wait_statistics(lambda stats: stats.connections == 0)
    room.release = trio.Event()
    async with trio.open_nursery() as holders:
        holders.start_soon(hold)
        await room.arrived.receive()
        room.release.set()
    assert held[-1].status == 200


@pytest.mark.parametrize("config", [RoomsConfig(max_message_size=1024)])
async def test_a_body_announced_over_the_limit_gets_413_before_it_is_sent(
    http_port: int, admin_rooms: Rooms[AdminRoom]
) -> None:
    """A Content-Length over max_message_size is answered 413 at once; the body is never read."""
    stream = await connect_socket(http_port)
    async with stream:
        await stream.send_all(
            b"POST /rooms/hall/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1025\r\n\r\n"
        )
        with trio.fail_after(5):
            status, head, _ = await read_http_response(stream)
    assert status == 413
    assert b"connection: close" in head.lower()
    assert admin_rooms.statistics().rooms == 0


@pytest.mark.parametrize("config", [RoomsConfig(max_message_size=1024)])
async def test_a_chunked_body_is_cut_off_with_413_once_it_passes_the_limit(
    http_port: int, admin_rooms: Rooms[AdminRoom]
) -> None:
    """A body of unannounced length gets 413 as soon as it passes the limit, before it ends."""
    connection = h11.Connection(h11.CLIENT)
    headers = [
        ("host", "127.0.0.1"),
        ("content-type", "application/json"),
        ("transfer-encoding", "chunked"),
    ]
    data = connection.send(
        h11.Request(method="POST", target="/rooms/hall/broadcast", headers=headers)
    )
    for _ in range(3):  # 1536 bytes, and no end of the body
        data += connection.send(h11.Data(data=b" " * 512))
    stream = await connect_socket(http_port)
    async with stream:
        await stream.send_all(data)
        with trio.fail_after(5):
            status, _, _ = await read_http_response(stream)
    assert status == 413
    assert admin_rooms.statistics().rooms == 0


async def test_a_factory_the_app_cannot_see_through_still_gets_415(nursery: trio.Nursery) -> None:
    """When the room tells its class only once made, its body routes still require JSON."""
    async with trio_rooms.open_rooms(lambda name: AdminRoom(name)) as rooms:
        port = await start_server(nursery, "hypercorn", rooms)
        body = b'{"message":"hi"}'
        refused = await http(port, "POST", "/rooms/hall/broadcast", body, content_type="text/plain")
        assert refused.status == 415
        taken = await http(port, "POST", "/rooms/hall/broadcast", body)
        assert (taken.status, taken.json()) == (200, {"success": True})


def test_the_request_timeout_defaults_to_ten_seconds() -> None:
    """request_timeout is 10 s unless set, and must be positive."""
    assert RoomsConfig().request_timeout == 10.0
    with pytest.raises(ValueError, match="'request_timeout' must be > 0"):
        RoomsConfig(request_timeout=0)


async def test_a_client_that_expects_100_continue_is_told_to_send_its_body(
    http_port: int,
) -> None:
    """``Expect: 100-continue`` gets the interim 100, then the route's answer to the body."""
    body = b'{"message":"after the 100"}'
    head = (
        b"POST /rooms/hall/broadcast HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\nexpect: 100-continue\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    stream = await connect_socket(http_port)
    async with stream:
        await stream.send_all(head)
        with trio.fail_after(5):
            status, _, rest = await read_http_response(stream)
            assert status == 100
            await stream.send_all(body)
            if not rest:
                status, _, rest = await read_http_response(stream)
            else:
                status = int(rest.split(b" ", 2)[1])
    assert status == 200


class BigRoom(Room[MemberSession]):
    @route.get("/big")
    async def big(self, request: HttpRequest) -> Response:
        return Response(200, (("content-type", "application/octet-stream"),), b"x" * BIG)


BIG = 4 * 1024 * 1024


async def test_a_large_answer_reaches_a_client_that_reads_it_late(
    nursery: trio.Nursery, transport: Transport
) -> None:
    """A route's multi-megabyte answer is written whole to a client that starts reading late."""
    async with trio_rooms.open_rooms(BigRoom) as rooms:
        port = await start_server(nursery, transport, rooms)
        stream = await connect_socket(port, rcvbuf=4096)
        async with stream:
            await stream.send_all(b"GET /rooms/hall/big HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            await trio.sleep(1.5)  # sync-ok: a client that reads late, past the server's linger
            with trio.fail_after(10):
                status, head, body = await read_http_response(stream)
                while len(body) < BIG and (chunk := await stream.receive_some(65536)):
                    body += chunk
    assert status == 200, head
    assert len(body) == BIG
