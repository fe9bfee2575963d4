"""Opening handshakes that RFC 6455 and RFC 9112 allow, in the shapes real clients send.

The embedded server reads a simple head on a fast path (`read_head`) and anything else
through h11; each variant here must be accepted (101, then the room's first message)
or refused with the right status whichever path reads it, and whichever way the head
is cut across reads.
"""

from __future__ import annotations

import attrs
import pytest
import trio

from trio_rooms.transports._handshake import HandshakeParser, PlainRequest, Refusal, Upgrade

from .sockets import (
    HANDSHAKE_KEY,
    TEXT,
    RawClient,
    client_frame,
    connect_socket,
    read_http_response,
)

GUARD = 10.0
TARGET = "/rooms/lobby/websocket"

pytestmark = pytest.mark.embedded_only("the embedded server's own handshake")


def _head(*lines: str, request_line: str = f"GET {TARGET} HTTP/1.1", end: str = "\r\n") -> bytes:
    return (request_line + "\r\n" + "".join(line + "\r\n" for line in lines) + end).encode(
        "latin-1"
    )


def _usual(*, drop: str = "", **replace: str) -> list[str]:
    """The usual header lines, ``drop`` (a name) left out, ``replace`` (name: line) changed."""
    lines = {
        "host": "Host: 127.0.0.1",
        "upgrade": "Upgrade: websocket",
        "connection": "Connection: Upgrade",
        "key": f"Sec-WebSocket-Key: {HANDSHAKE_KEY}",
        "version": "Sec-WebSocket-Version: 13",
    }
    lines.update(replace)
    return [line for name, line in lines.items() if name != drop and line]


ACCEPTED: dict[str, bytes] = {
    "usual": _head(*_usual()),
    "lower-case-names": _head(*(line.lower() if "Key" not in line else line for line in _usual())),
    "upper-case-names": _head(
        *(line.split(":", 1)[0].upper() + ":" + line.split(":", 1)[1] for line in _usual())
    ),
    "upgrade-WebSocket": _head(*_usual(upgrade="Upgrade: WebSocket")),
    "connection-keep-alive-upgrade": _head(*_usual(connection="Connection: keep-alive, Upgrade")),
    "connection-upgrade-http2-settings": _head(
        *_usual(connection="Connection: Upgrade, HTTP2-Settings"),
        "HTTP2-Settings: AAMAAABkAAQAAP__",
    ),
    "two-connection-headers": _head(
        *_usual(connection="Connection: keep-alive"), "Connection: Upgrade"
    ),
    "connection-lower-case-token": _head(*_usual(connection="Connection: upgrade")),
    "whitespace-and-tabs": _head(
        *_usual(
            upgrade="Upgrade:\t websocket \t",
            connection="Connection:   keep-alive ,\tUpgrade  ",
            key=f"Sec-WebSocket-Key:\t{HANDSHAKE_KEY}\t",
            version="Sec-WebSocket-Version:  13 ",
        )
    ),
    "no-space-after-colon": _head(
        *_usual(upgrade="Upgrade:websocket", version="Sec-WebSocket-Version:13")
    ),
    "subprotocol-offers": _head(*_usual(), "Sec-WebSocket-Protocol: chat, superchat"),
    "subprotocols-in-two-headers": _head(
        *_usual(), "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: superchat, v2"
    ),
    "permessage-deflate-offered": _head(
        *_usual(),
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    ),
    "query-string": _head(*_usual(), request_line=f"GET {TARGET}?name=alice&x=%20y HTTP/1.1"),
    "absolute-uri-target": _head(*_usual(), request_line=f"GET http://127.0.0.1{TARGET} HTTP/1.1"),
    "absolute-ws-uri-target-with-query": _head(
        *_usual(), request_line=f"GET ws://127.0.0.1:8080{TARGET}?name=bob HTTP/1.1"
    ),
    "host-with-port": _head(*_usual(host="Host: 127.0.0.1:8080")),
    "host-ipv6-literal": _head(*_usual(host="Host: [::1]:8080")),
    "host-name": _head(*_usual(host="Host: rooms.example.com")),
    "browser-like": _head(
        *_usual(connection="Connection: keep-alive, Upgrade"),
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Accept: */*",
        "Accept-Language: en-US,en;q=0.5",
        "Accept-Encoding: gzip, deflate, br",
        "Sec-WebSocket-Extensions: permessage-deflate",
        "Origin: http://127.0.0.1",
        "Sec-Fetch-Dest: empty",
        "Sec-Fetch-Mode: websocket",
        "Sec-Fetch-Site: same-origin",
        "Pragma: no-cache",
        "Cache-Control: no-cache",
    ),
    "bare-lf-line-ends": _head(*_usual()).replace(b"\r\n", b"\n"),
    "content-length-0": _head(*_usual(), "Content-Length: 0"),
}

REFUSED: dict[str, tuple[bytes, int]] = {
    "version-8": (_head(*_usual(version="Sec-WebSocket-Version: 8")), 426),
    "version-12": (_head(*_usual(version="Sec-WebSocket-Version: 12")), 426),
    "two-versions": (_head(*_usual(), "Sec-WebSocket-Version: 8"), 426),
    "no-version": (_head(*_usual(drop="version")), 400),
    "no-key": (_head(*_usual(drop="key")), 400),
    "short-key": (_head(*_usual(key="Sec-WebSocket-Key: dGhlIHNhbXBsZQ==")), 400),
    "long-key": (_head(*_usual(key="Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSBsb25n")), 400),
    "key-not-base64": (_head(*_usual(key="Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==")), 400),
    "two-keys": (_head(*_usual(), f"Sec-WebSocket-Key: {HANDSHAKE_KEY}"), 400),
    "post": (_head(*_usual(), request_line=f"POST {TARGET} HTTP/1.1"), 400),
    "http-1.0": (_head(*_usual(), request_line=f"GET {TARGET} HTTP/1.0"), 400),
    "no-host": (_head(*_usual(drop="host")), 400),
    "two-hosts": (_head(*_usual(), "Host: example.com"), 400),
    "no-connection-upgrade": (_head(*_usual(connection="Connection: keep-alive")), 400),
    "body": (_head(*_usual(), "Content-Length: 5") + b"hello", 400),
    "chunked": (_head(*_usual(), "Transfer-Encoding: chunked") + b"0\r\n\r\n", 400),
    "oversize-head": (_head(*_usual(), *(f"X-Filler-{i}: {'x' * 100}" for i in range(200))), 431),
    # ROOM_NAME_PATTERN is unreserved characters only: encoded, others stay refused.
    "percent-encoded-room": (
        _head(*_usual(), request_line="GET /rooms/caf%C3%A9%20room/websocket HTTP/1.1"),
        400,
    ),
    "bad-subprotocol": (_head(*_usual(), "Sec-WebSocket-Protocol: a b"), 400),
}


async def _open(port: int) -> trio.SocketStream:
    return await connect_socket(port)


async def _assert_accepted(stream: trio.SocketStream, head: bytes = b"") -> RawClient:
    status, response, rest = await read_http_response(stream)
    assert status == 101, response
    lowered = response.lower()
    # Nothing was negotiated that the client did not get: no subprotocol, no extension.
    assert b"sec-websocket-extensions" not in lowered
    assert b"sec-websocket-protocol" not in lowered
    assert b"\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in lowered
    client = RawClient(stream, rest)
    first = await client.receive_frame()  # the room's join: the session runs
    assert first is not None
    assert first.opcode == TEXT, first
    return client


@pytest.mark.parametrize("head", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_a_valid_variant_is_accepted(port: int, head: bytes) -> None:
    with trio.fail_after(GUARD):
        stream = await _open(port)
        async with stream:
            await stream.send_all(head)
            await _assert_accepted(stream)


@pytest.mark.parametrize("head", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_a_valid_variant_sent_a_byte_at_a_time_is_accepted(port: int, head: bytes) -> None:
    with trio.fail_after(GUARD * 3):
        stream = await _open(port)
        async with stream:
            for index in range(len(head)):
                await stream.send_all(head[index : index + 1])
            await _assert_accepted(stream)


def _feed(pieces: list[bytes]) -> Upgrade | PlainRequest | Refusal | None:
    """What a parser answers to ``pieces``; the pieces after its answer go to its trailing."""
    parser = HandshakeParser()
    for number, piece in enumerate(pieces, 1):
        result = parser.receive_data(piece)
        if isinstance(result, Upgrade):
            later = b"".join(pieces[number:])
            return attrs.evolve(result, trailing=result.trailing + later)
        if result is not None:
            return result
    return None


@pytest.mark.parametrize(
    "head",
    [*ACCEPTED.values(), *(h for h, _ in REFUSED.values())],
    ids=[*ACCEPTED.keys(), *REFUSED.keys()],
)
def test_a_head_cut_anywhere_reads_as_it_does_whole(head: bytes) -> None:
    """Cut at every byte into two reads, or a byte per read: the same answer as whole.

    The frame after the head rides along: it is the `Upgrade`'s trailing bytes.
    """
    frame = client_frame(TEXT, b"first")
    data = head + frame
    whole = _feed([data])
    assert whole is not None
    if isinstance(whole, Upgrade):
        assert whole.trailing == frame
    for cut in range(1, len(data)):
        assert _feed([data[:cut], data[cut:]]) == whole, cut
    assert _feed([data[i : i + 1] for i in range(len(data))]) == whole


@pytest.mark.parametrize("name", ["usual", "bare-lf-line-ends", "subprotocol-offers"])
async def test_a_head_and_the_first_frames_in_one_read(port: int, name: str) -> None:
    """A client that does not wait for the 101: its frames are the session's first input."""
    ping = client_frame(0x9, b"early")
    with trio.fail_after(GUARD):
        stream = await _open(port)
        async with stream:
            await stream.send_all(ACCEPTED[name] + ping + client_frame(0x8, b"\x03\xe8"))
            client = await _assert_accepted(stream)
            frames = await client.receive_until_eof()
            opcodes = [frame.opcode for frame in frames]
            assert 0xA in opcodes, frames  # the pong
            assert frames[-1].opcode == 0x8, frames
            assert frames[-1].close_code == 1000


@pytest.mark.parametrize(("head", "status"), REFUSED.values(), ids=REFUSED.keys())
async def test_an_invalid_handshake_is_refused_with_its_status(
    port: int, head: bytes, status: int
) -> None:
    with trio.fail_after(GUARD):
        stream = await _open(port)
        async with stream:
            await stream.send_all(head)
            got, response, _ = await read_http_response(stream)
            assert got == status, response
            if status == 426:
                assert b"\r\nsec-websocket-version: 13" in response.lower()
