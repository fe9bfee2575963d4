"""Server-to-client WebSocket frames (RFC 6455 section 5.2), built without wsproto.

Server frames are never masked, so a frame's bytes are the same for every recipient:
a broadcast frames its payload once and every session writes the same object.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from .._core.outbound import Frame

__all__ = ["AnnouncedLengths", "close_frame", "http_response", "wire_bytes"]

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def _frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    first = 0x80 | opcode  # FIN: we never fragment
    if size < 126:
        return _SHORT.pack(first, size) + payload
    if size < 65536:
        return _MEDIUM.pack(first, 126, size) + payload
    return _LONG.pack(first, 127, size) + payload


def wire_bytes(frame: Frame) -> bytes:
    """The framed bytes of ``frame``, built on first use and cached on it."""
    wire = frame.wire
    if wire is None:
        wire = frame.wire = _frame(frame.opcode, frame.payload)
    return wire


def close_frame(code: int, reason: str) -> bytes:
    """A close frame carrying ``code`` and ``reason`` (at most 123 bytes, cut if longer)."""
    # Cut at 123 bytes without splitting a UTF-8 sequence: peers reject invalid reasons.
    data = reason.encode()[:123].decode(errors="ignore").encode()
    return _frame(0x8, code.to_bytes(2, "big") + data)


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def http_response(status: int, body: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response with a plain-text body."""
    plain = (("content-type", "text/plain; charset=utf-8"), *headers)
    return response_bytes(status, plain, body.encode())


def response_bytes(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response: its head and ``body``.

    ``content-length`` and ``connection`` are set here (ones in ``headers`` are left out).
    """
    extra = "".join(
        f"{name}: {value}\r\n"
        for name, value in headers
        if name.lower() not in ("content-length", "connection")
    )
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"{extra}content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class AnnouncedLengths:
    """Reads the headers of a client's frames alongside wsproto.

    wsproto hands out a frame's payload as it arrives, without the length its header
    announced; this finds that length, so a frame announcing more than the limit is
    refused at once instead of after the limit's worth of bytes has been read.
    """

    __slots__ = ("_head", "_skip")

    def __init__(self) -> None:
        self._head = b""  # the start of a header cut by the end of a read
        self._skip = 0  # payload bytes of the current frame still to come

    def feed(self, data: bytes | bytearray) -> int:
        """The largest payload length announced by a data frame whose header is in ``data``."""
        largest = 0
        position, end = 0, len(data)
        while position < end:
            if self._skip:
                step = min(self._skip, end - position)
                self._skip -= step
                position += step
                continue
            kept = len(self._head)
            head = self._head + bytes(data[position : position + 14 - kept])
            if len(head) < 2:
                self._head = head
                break
            size = head[1] & 0x7F
            length = 2 + (2 if size == 126 else 8 if size == 127 else 0) + (head[1] >> 7) * 4
            if len(head) < length:
                self._head = head  # the read ended inside the header
                break
            if size == 126:
                size = int.from_bytes(head[2:4], "big")
            elif size == 127:
                size = int.from_bytes(head[2:10], "big")
            if head[0] & 0x0F < 0x8 and size < 2**63:  # data; wsproto refuses the MSB set
                largest = max(largest, size)
            self._head = b""
            position += length - kept
            self._skip = size
        return largest
