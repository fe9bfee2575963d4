"""Bad opening handshakes on the embedded server: each gets its exact 4xx, no traceback."""

from __future__ import annotations

import logging

import pytest
import trio

from trio_rooms import Rooms
from trio_rooms.transports._handshake import MAX_HEAD_SIZE
from trio_rooms.transports._throttle import ThrottledLog

from ..chat_app import Chat, ChatRoom, UserJoined, Whisper
from ..peer import Peer, connect
from ..sockets import (
    CLOSE,
    HANDSHAKE_KEY,
    TEXT,
    RawClient,
    client_frame,
    connect_socket,
    handshake_request,
    read_http_response,
)

pytestmark = pytest.mark.embedded_only("the embedded server's own handshake parser")

GOOD = handshake_request("/rooms/lobby/websocket")


def _with(old: bytes, new: bytes) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new)


def _extra(lines: str) -> bytes:
    return handshake_request("/rooms/lobby/websocket", extra=lines)


#: A request that is not a valid opening handshake, and the status it must get.
BAD_HANDSHAKES: dict[str, tuple[bytes, int]] = {
    "Host with a space": (_with(b"Host: 127.0.0.1", b"Host: a b"), 400),
    "Host not ASCII": (_with(b"Host: 127.0.0.1", b"Host: \xff\xfe.example"), 400),
    "Host with a bad IP literal": (_with(b"Host: 127.0.0.1", b"Host: [::1"), 400),
    "two Host headers": (_extra("Host: evil.example\r\n"), 400),
    "no Host": (_with(b"Host: 127.0.0.1\r\n", b""), 400),
    "empty Host header name": (_extra(": x\r\n"), 400),
    "target not ASCII": (handshake_request(b"/rooms/l\xc3\xa9/websocket"), 400),
    "NUL in a header": (_extra("X-A: a\x00b\r\n"), 400),
    "header line without a colon": (_extra("no colon here\r\n"), 400),
    "Connection not ASCII": (_with(b"Connection: Upgrade", b"Connection: Upgrade, \xff"), 400),
    "Upgrade not ASCII": (_with(b"Upgrade: websocket", b"Upgrade: websocket\xe9"), 400),
    "subprotocol not ASCII": (_extra("Sec-WebSocket-Protocol: chat, \xe9\r\n"), 400),
    "subprotocol not a token": (_extra("Sec-WebSocket-Protocol: a b\r\n"), 400),
    "extensions not ASCII": (_extra("Sec-WebSocket-Extensions: \xe9\r\n"), 400),
    "key not base64": (_with(HANDSHAKE_KEY.encode(), b"not base64!"), 400),
    "key of 15 bytes": (_with(HANDSHAKE_KEY.encode(), b"AAAAAAAAAAAAAAAAAAAA"), 400),
    "two keys": (_extra(f"Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\n"), 400),
    "no key": (_with(f"Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\n".encode(), b""), 400),
    "no version": (_with(b"Sec-WebSocket-Version: 13\r\n", b""), 400),
    "version 8": (_with(b"Version: 13", b"Version: 8"), 426),
    "two versions": (_extra("Sec-WebSocket-Version: 8\r\n"), 426),
    "HTTP/1.0": (_with(b"HTTP/1.1", b"HTTP/1.0"), 400),
    "HTTP/2.0 on the request line": (_with(b"HTTP/1.1", b"HTTP/2.0"), 400),
    "POST": (_with(b"GET ", b"POST "), 400),
    "no Upgrade": (_with(b"Upgrade: websocket\r\n", b""), 400),
    "no Connection: Upgrade": (_with(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
    "a body, chunked": (_extra("Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n0\r\n\r\n", 400),
    "a body, gzip-coded": (_extra("Transfer-Encoding: gzip\r\n"), 400),
    "a body, with a length": (_extra("Content-Length: 5\r\n") + b"hello", 400),
    "a bad Content-Length": (_extra("Content-Length: five\r\n"), 400),
    "a 70 KB request line": (handshake_request("/rooms/lobby/websocket?" + "a" * 70_000), 431),
    "a 70 KB header": (_extra(f"X-Big: {'b' * 70_000}\r\n"), 431),
    "4000 headers": (_extra("X-A: b\r\n" * 4000), 431),
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 400),
    "garbage pipelined after a bad request": (
        _with(b"HTTP/1.1", b"HTTP/1.0") + b"\xff" * 9000,
        400,
    ),
    "a second request pipelined after a bad one": (_with(b"GET ", b"PUT ") + GOOD, 400),
}


async def _assert_served(canary: Peer, text: str) -> None:
    await canary.send(Whisper(text=text))
    heard = await canary.receive_until(Chat)
    assert isinstance(heard, Chat)
    assert heard.text == text


async def _answer(port: int, request: bytes) -> tuple[int, bytes]:
    stream = await connect_socket(port)
    async with stream:
        await stream.send_all(request)
        status, head, _ = await read_http_response(stream)
    return status, head


@pytest.mark.parametrize(("request_bytes", "status"), BAD_HANDSHAKES.values(), ids=BAD_HANDSHAKES)
async def test_a_bad_handshake_gets_its_status_and_the_server_keeps_serving(
    port: int,
    rooms: Rooms[ChatRoom],
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
    status: int,
) -> None:
    """The exact 4xx answers it, no room is made, nothing is logged with a traceback."""
    async with connect(port, "canary") as canary:
        await canary.receive_until(UserJoined)
        with trio.fail_after(10):
            answer, head = await _answer(port, request_bytes)
            assert answer == status, head
            await _assert_served(canary, "still served")
    assert b"connection: close" in head
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []
    assert rooms.statistics().rooms == 1  # the canary's


async def test_another_websocket_version_gets_426_naming_version_13(port: int) -> None:
    """RFC 6455 section 4.4: 426 Upgrade Required with Sec-WebSocket-Version: 13."""
    with trio.fail_after(5):
        status, head = await _answer(port, _with(b"Version: 13", b"Version: 8"))
    assert status == 426
    assert b"\r\nsec-websocket-version: 13\r\n" in head.lower()


async def test_an_http_1_0_upgrade_is_refused_with_400(port: int, rooms: Rooms[ChatRoom]) -> None:
    """RFC 6455 section 4.1 needs HTTP/1.1: an HTTP/1.0 upgrade gets 400, never 101."""
    with trio.fail_after(5):
        status, head = await _answer(port, _with(b"HTTP/1.1", b"HTTP/1.0"))
    assert (status, rooms.statistics().rooms) == (400, 0), head


async def test_a_flood_of_bad_handshakes_logs_at_most_one_line(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A hundred bad requests in a row are all answered and logged in one line at most."""
    caplog.set_level(logging.DEBUG, "trio_rooms")
    with trio.fail_after(20):
        for _ in range(100):
            assert (await _answer(port, _with(b"Host: 127.0.0.1", b"Host: a b")))[0] == 400
    refused = [record for record in caplog.records if "refused a handshake" in record.message]
    assert len(refused) <= 1
    assert all(record.levelno == logging.INFO for record in refused)


async def test_a_frame_sent_with_the_handshake_is_not_lost(port: int) -> None:
    """A first frame in the same write as the request is handled after the 101."""
    frame = client_frame(TEXT, b'{"type": "whisper", "text": "eager"}')
    stream = await connect_socket(port)
    async with stream:
        with trio.fail_after(5):
            await stream.send_all(GOOD + frame)
            status, head, rest = await read_http_response(stream)
            assert status == 101, head
            client = RawClient(stream, rest)
            assert '"userJoined"' in await client.receive_text()
            assert '"eager"' in await client.receive_text()


async def test_garbage_sent_with_the_handshake_closes_with_1002(port: int) -> None:
    """Bytes after the request that are no frame get the protocol-error close, 1002."""
    stream = await connect_socket(port)
    async with stream:
        with trio.fail_after(5):
            await stream.send_all(GOOD + b"\x0f\xff garbage")
            status, head, rest = await read_http_response(stream)
            assert status == 101, head
            client = RawClient(stream, rest)
            assert await client.close_code() == 1002
            await client.send(client_frame(CLOSE))


def test_the_throttled_log_counts_what_it_leaves_out(caplog: pytest.LogCaptureFixture) -> None:
    """One line per interval; the next line says how many were left out in between."""
    now = [0.0]
    log = ThrottledLog(
        logging.getLogger("trio_rooms.test"), logging.INFO, 10.0, clock=lambda: now[0]
    )
    caplog.set_level(logging.INFO, "trio_rooms.test")
    for second in range(25):
        now[0] = float(second)
        log.log("bad thing %d", second)
    assert [record.getMessage() for record in caplog.records] == [
        "bad thing 0",
        "bad thing 10 (9 more like it since the last report)",
        "bad thing 20 (9 more like it since the last report)",
    ]


@pytest.mark.parametrize(("over", "status"), [(0, 101), (1, 431)], ids=["at the limit", "one over"])
async def test_a_request_head_may_take_16_kib(port: int, over: int, status: int) -> None:
    """A head of exactly MAX_HEAD_SIZE bytes connects; one byte more gets 431."""
    padding = MAX_HEAD_SIZE + over - len(_extra("X-Pad: \r\n"))
    request = _extra(f"X-Pad: {'p' * padding}\r\n")
    assert len(request) == MAX_HEAD_SIZE + over
    with trio.fail_after(5):
        assert (await _answer(port, request))[0] == status
