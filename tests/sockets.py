"""A trio-websocket client whose TCP socket the test owns.

trio-websocket's client does not close its socket when the server closes first, which
warnings-as-errors turns into a failure; every test client opens the stream itself
through here and closes it on exit.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import NamedTuple

import orjson
import trio
import trio_websocket


@asynccontextmanager
async def open_client(
    port: int, resource: str
) -> AsyncGenerator[tuple[trio_websocket.WebSocketConnection, trio.SocketStream]]:
    """A WebSocket client of ``ws://127.0.0.1:{port}{resource}`` and its socket."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(nursery, stream, "127.0.0.1", resource)
            try:
                yield ws, stream
            finally:
                await ws.aclose()
    finally:
        await stream.aclose()


async def read_close_code(ws: trio_websocket.WebSocketConnection) -> int:
    """Read until the server closes; return its close code (1006 without a close frame)."""
    try:
        while True:
            await ws.get_message()
    except trio_websocket.ConnectionClosed as exc:
        return exc.reason.code if exc.reason is not None else 1006


# --------------------------------------------------------------------------- raw sockets
# For the abuse battery: a client on a bare socket that sends hand-built bytes (broken
# frames, lying lengths, half handshakes) and parses what the server sends back.

#: The sample key of RFC 6455 section 1.3; the server's answer is not checked.
HANDSHAKE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def handshake_request(resource: str | bytes, *, extra: str = "") -> bytes:
    """A minimal opening handshake for ``resource`` (``extra``: more header lines).

    A ``bytes`` resource goes on the request line as it is (NUL, CR, LF included).
    """
    target = resource if isinstance(resource, bytes) else resource.encode("latin-1")
    headers = (
        "Host: 127.0.0.1\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    )
    return b"GET " + target + b" HTTP/1.1\r\n" + headers.encode("latin-1")


def mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the 4-byte masking ``key`` (RFC 6455 section 5.3)."""
    if not payload or key == b"\x00\x00\x00\x00":
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(payload), "big")


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = b"\x37\xfa\x21\x3d",
    length: int | None = None,
) -> bytes:
    """A client frame, built by hand so that any field may be wrong.

    ``rsv``: the three reserved bits (0 to 7); ``key=None``: unmasked; ``length``: the
    payload length to announce, whatever the payload's real length (the 64-bit form is
    used from 65536, the 16-bit one from 126, as the RFC's minimal encoding).
    """
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)
    mask_bit = 0x80 if key is not None else 0
    if size < 126:
        header = bytes([first, mask_bit | size])
    elif size < 65536:
        header = bytes([first, mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, mask_bit | 127]) + size.to_bytes(8, "big")
    if key is None:
        return header + payload
    return header + key + mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


class ServerFrame(NamedTuple):
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int:
        """The code of a close frame; 1005 if it carries none."""
        assert self.opcode == CLOSE
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else 1005


class RawClient:
    """A WebSocket client on a bare socket: hand-built bytes out, server frames parsed in."""

    def __init__(self, stream: trio.SocketStream, buffered: bytes = b"") -> None:
        self.stream = stream
        self._buffer = bytearray(buffered)
        self._ended = False

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_text(self, text: str) -> None:
        await self.send(client_frame(TEXT, text.encode()))

    async def _fill(self) -> bool:
        """Read more from the socket; False once it has ended (EOF or reset)."""
        if self._ended:
            return False
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._ended = True
            return False
        self._buffer += data
        return True

    async def receive_frame(self) -> ServerFrame | None:
        """The next frame the server sent; None if the connection ended first."""
        buffer = self._buffer
        while True:
            frame = _parse_server_frame(buffer)
            if frame is not None:
                return frame
            if not await self._fill():
                return None

    async def receive_text(self) -> str:
        """The next text frame, skipping pings; fails on anything else."""
        while True:
            frame = await self.receive_frame()
            assert frame is not None, "the connection ended"
            if frame.opcode == PING:
                continue
            assert frame.opcode == TEXT, frame
            return frame.payload.decode()

    async def receive_json(self) -> dict[str, object]:
        """The next text frame's JSON object, skipping pings."""
        message: dict[str, object] = orjson.loads(await self.receive_text())
        return message

    async def close_code(self) -> int | None:
        """Read until the server's close frame: its code; None if the TCP connection ended first."""
        while True:
            frame = await self.receive_frame()
            if frame is None:
                return None
            if frame.opcode == CLOSE:
                return frame.close_code

    async def receive_until_eof(self) -> list[ServerFrame]:
        """Every frame until the connection ends (a cut-off last frame is left out)."""
        frames: list[ServerFrame] = []
        while (frame := await self.receive_frame()) is not None:
            frames.append(frame)
        return frames

    def reset(self) -> None:
        """Close the socket with SO_LINGER 0: the peer gets a TCP RST, not a FIN."""
        self.stream.socket.setsockopt(
            trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.stream.socket.close()


def _parse_server_frame(buffer: bytearray) -> ServerFrame | None:
    """Take one complete (unmasked) server frame off the front of ``buffer``."""
    if len(buffer) < 2:
        return None
    size = buffer[1] & 0x7F
    offset = 2
    if size == 126:
        if len(buffer) < 4:
            return None
        size, offset = int.from_bytes(buffer[2:4], "big"), 4
    elif size == 127:
        if len(buffer) < 10:
            return None
        size, offset = int.from_bytes(buffer[2:10], "big"), 10
    assert not buffer[1] & 0x80, "the server masked a frame"
    if len(buffer) < offset + size:
        return None
    frame = ServerFrame(
        bool(buffer[0] & 0x80), buffer[0] & 0x0F, bytes(buffer[offset : offset + size])
    )
    del buffer[: offset + size]
    return frame


async def connect_socket(port: int, *, rcvbuf: int | None = None) -> trio.SocketStream:
    """A TCP connection to 127.0.0.1:``port``; ``rcvbuf`` is set before connecting."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, rcvbuf)
        await sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def http_get(port: int, target: str) -> bytes:
    """Everything the server answers to ``GET target`` on a fresh connection (read until
    it closes it)."""
    stream = await connect_socket(port)
    async with stream:
        request = f"GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        data = bytearray()
        while chunk := await stream.receive_some(65536):
            data += chunk
        return bytes(data)


async def read_http_response(stream: trio.SocketStream) -> tuple[int, bytes, bytes]:
    """Read an HTTP response head: its status, the head and what followed it.

    The status is 0 if the connection ended before a complete head.
    """
    data = bytearray()
    while b"\r\n\r\n" not in data:
        try:
            chunk = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            chunk = b""
        if not chunk:
            return 0, bytes(data), b""
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return int(parts[1]), head, rest


async def raw_handshake(stream: trio.SocketStream, resource: str) -> RawClient:
    """Open the WebSocket on ``stream``; fails unless the server answers 101."""
    await stream.send_all(handshake_request(resource))
    status, head, rest = await read_http_response(stream)
    assert status == 101, head
    return RawClient(stream, rest)


@asynccontextmanager
async def open_raw(
    port: int, resource: str, *, rcvbuf: int | None = None
) -> AsyncGenerator[RawClient]:
    """A `RawClient` of ``ws://127.0.0.1:{port}{resource}``, its socket closed on exit."""
    stream = await connect_socket(port, rcvbuf=rcvbuf)
    try:
        yield await raw_handshake(stream, resource)
    finally:
        await trio.aclose_forcefully(stream)
