"""Server-to-client WebSocket frames (RFC 6455 section 5.2), built without wsproto.

Server frames are never masked, so a frame's bytes are the same for every recipient:
a broadcast frames its payload once and every session writes the same object.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from .._core.outbound import Frame

__all__ = ["close_frame", "http_response", "response_bytes", "wire_bytes"]

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
        payload = frame.payload
        size = len(payload)
        # `_frame`'s common case inline: a reply or a chat is short.
        if size < 126:
            wire = _SHORT.pack(0x80 | frame.opcode, size) + payload
        else:
            wire = _frame(frame.opcode, payload)
        frame.wire = wire
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


#: How a response's body is framed: the transport's to say, whatever a route's headers
#: say. A route's own ``transfer-encoding: chunked`` over a whole body, or a second
#: ``content-length``, would make a client or proxy read the next response from this one.
FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})
#: What the embedded server sets itself: the framing, and ``connection: close``.
_OWN_HEADERS: Final = FRAMING_HEADERS | {"connection"}


def response_bytes(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response: its head and ``body``.

    Its framing and ``connection`` are set here (ones in ``headers`` are left out).
    """
    extra = "".join(
        f"{name}: {value}\r\n" for name, value in headers if name.lower() not in _OWN_HEADERS
    )
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"{extra}content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
