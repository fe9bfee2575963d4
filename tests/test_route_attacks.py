"""Attacks on the rooms' HTTP routes, on the embedded server and behind hypercorn.

Resets at every point of a request, pipelined requests, heads and bodies past the
limits, a handler that raises: each ends its own request only (a clear status, or
the connection), logs no traceback but a failing handler's, leaks no connection, and
the server answers the next request as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import Rooms, RoomsConfig

from .routes_app import AdminRoom
from .servers import Transport, start_server
from .sockets import RawClient, connect_socket, read_http_response

_BODY = b'{"message": "hello everyone"}'


def _post(path: str, body: bytes, *, length: int | None = None, close: bool = True) -> bytes:
    head = (
        f"POST /rooms/hall{path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body) if length is None else length}\r\n"
        + ("connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + body


def _get(path: str, *, close: bool = False) -> bytes:
    connection = "connection: close\r\n" if close else ""
    return f"GET /rooms/hall{path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{connection}\r\n".encode()


_REQUEST = _post("/broadcast", _BODY)
_HEAD_END = _REQUEST.index(b"\r\n\r\n") + 4

#: Where a request is cut by an RST: bytes of ``_REQUEST`` sent first.
RESET_POINTS = {
    "nothing": 0,
    "request line half sent": 10,
    "headers half sent": _HEAD_END // 2,
    "head without its blank line": _HEAD_END - 2,
    "head sent": _HEAD_END,
    "body half sent": _HEAD_END + len(_BODY) // 2,
    "all sent": len(_REQUEST),
}


@pytest.fixture
async def admin_rooms() -> AsyncGenerator[Rooms[AdminRoom]]:
    config = RoomsConfig(max_connections_per_address=1000)
    async with trio_rooms.open_rooms(AdminRoom, config=config) as rooms:
        yield rooms


@pytest.fixture
async def http_port(
    admin_rooms: Rooms[AdminRoom], nursery: trio.Nursery, transport: Transport
) -> int:
    return await start_server(nursery, transport, admin_rooms)


async def _exchange(port: int, data: bytes) -> tuple[int, bytes, bytes]:
    """Send ``data`` on a fresh connection; the first response's status, head and rest."""
    stream = await connect_socket(port)
    async with stream:
        await stream.send_all(data)
        with trio.fail_after(10):
            return await read_http_response(stream)


async def _responses(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it ends the connection."""
    data = bytearray()
    with trio.fail_after(10):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            data += chunk
    return bytes(data)


async def _still_served(port: int) -> None:
    status, _, rest = await _exchange(port, _get("/echo?x=ok", close=True))
    assert status == 201
    assert b"GET /rooms/hall/echo ok" in rest or rest == b""


async def _settled(rooms: Rooms[AdminRoom]) -> None:
    """Every connection the attack opened is gone from the server's count."""
    with trio.fail_after(10):
        await rooms.wait_statistics(lambda stats: stats.connections == 0)


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Failures logged: tracebacks and warnings (hypercorn's connection failures are)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.exc_info or record.levelname in ("WARNING", "ERROR", "CRITICAL")
    ]


@pytest.mark.parametrize("point", RESET_POINTS)
async def test_a_reset_at_any_point_of_a_request_leaves_the_server_serving(
    http_port: int,
    admin_rooms: Rooms[AdminRoom],
    caplog: pytest.LogCaptureFixture,
    point: str,
) -> None:
    """An RST anywhere in a request ends only it: no traceback, no leaked connection."""
    for _ in range(5):
        stream = await connect_socket(http_port)
        await stream.send_all(_REQUEST[: RESET_POINTS[point]])
        await trio.testing.wait_all_tasks_blocked()  # the server read what was sent
        RawClient(stream).reset()
        await _still_served(http_port)
    await _settled(admin_rooms)
    assert _tracebacks(caplog) == []


def _answers(data: bytes) -> list[tuple[bytes, bytes]]:
    """The responses in ``data`` (each head and body, by its content-length)."""
    answers: list[tuple[bytes, bytes]] = []
    while data:
        head, found, data = data.partition(b"\r\n\r\n")
        assert found, data
        length = 0
        for line in head.lower().split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
        answers.append((head, data[:length]))
        data = data[length:]
    return answers


def _closes(head: bytes) -> bool:
    return b"connection: close" in head.lower()


@pytest.mark.parametrize("first", ["/echo?x=1", "/boom"])
async def test_pipelined_requests_are_answered_in_order_or_closed_clearly(
    http_port: int, caplog: pytest.LogCaptureFixture, first: str
) -> None:
    """Three requests in one write: each answer is its own request's, in order.

    A server may end the connection after an answer, if that answer says
    ``connection: close`` (the embedded server does, after each request): nothing
    else may follow it, and the client knows to send the rest again.
    """
    stream = await connect_socket(http_port)
    async with stream:
        await stream.send_all(_get(first) + _get("/echo?x=2") + _get("/echo?x=3", close=True))
        answers = _answers(await _responses(stream))
    expected = [
        b"Internal Server Error" if first == "/boom" else b"GET /rooms/hall/echo 1 None",
        b"GET /rooms/hall/echo 2 None",
        b"GET /rooms/hall/echo 3 None",
    ]
    assert 1 <= len(answers) <= 3
    assert [body for _, body in answers] == expected[: len(answers)]
    assert all(not _closes(head) for head, _ in answers[:-1])
    assert len(answers) == 3 or _closes(answers[-1][0])
    assert ("route failed" in caplog.text) == (first == "/boom")


@pytest.mark.parametrize("size", [20 * 1024, 200 * 1024])
async def test_a_head_past_the_limit_is_refused_and_the_server_serves_on(
    http_port: int,
    admin_rooms: Rooms[AdminRoom],
    caplog: pytest.LogCaptureFixture,
    transport: Transport,
    size: int,
) -> None:
    """A header of 20 or 200 KiB: a 4xx status or a closed connection, nothing else.

    The embedded server takes heads up to 16 KiB; hypercorn (h11) refuses only a head
    still incomplete past 16 KiB, so it may answer a 20 KiB one that came in one read.
    """
    head = _get("/echo", close=True)[:-2] + b"x-huge: " + b"a" * size + b"\r\n\r\n"
    stream = await connect_socket(http_port)
    async with stream:
        # The server may stop reading and hang up: a refusal too.
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(head)
        answer = await _responses(stream)
    refused = answer == b"" or answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4"))
    answered = answer.startswith(b"HTTP/1.1 201 ") and transport == "hypercorn" and size < 65536
    assert refused or answered, answer[:200]
    await _still_served(http_port)
    await _settled(admin_rooms)
    assert _tracebacks(caplog) == []


async def test_a_body_past_the_limit_gets_413_while_it_is_sent(
    http_port: int, admin_rooms: Rooms[AdminRoom], caplog: pytest.LogCaptureFixture
) -> None:
    """A body announced within bounds but longer than the limit, sent in pieces: 413."""
    limit = admin_rooms.config.max_message_size
    stream = await connect_socket(http_port)
    async with stream:
        await stream.send_all(
            b"POST /rooms/hall/broadcast HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        status = 0
        sent = 0
        with trio.fail_after(20):
            try:
                while sent <= 2 * limit:
                    piece = b"a" * 65536
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(piece), piece))
                    sent += len(piece)
            except trio.BrokenResourceError:
                pass
            status, _, _ = await read_http_response(stream)
    assert status in (413, 0)  # 0: the connection was cut after the answer was lost
    await _still_served(http_port)
    await _settled(admin_rooms)
    assert _tracebacks(caplog) == []


async def test_a_client_that_sends_a_request_and_never_reads_costs_one_connection(
    http_port: int, admin_rooms: Rooms[AdminRoom]
) -> None:
    """Requests sent, answers never read, then a reset: the server serves on, nothing leaks."""
    stream = await connect_socket(http_port)
    await stream.send_all(b"".join(_get(f"/echo?x={n}") for n in range(200)))
    await _still_served(http_port)
    RawClient(stream).reset()
    await _settled(admin_rooms)
