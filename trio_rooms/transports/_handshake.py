"""The server's side of the opening handshake (RFC 6455 section 4.2), without I/O.

The request head is read by `read_head` when it has the simple shape nearly every
handshake has, else by h11 (`H11HandshakeParser`, over the same bytes from the start);
this checks it against the RFC and answers it. Whatever the client sends ends in an
`Upgrade`, a `PlainRequest` (HTTP without an upgrade, for the rooms' routes: always
read by h11, which reads its body through `HandshakeParser.next_body`) or a `Refusal`
(a 4xx status), never in an exception: both readers refuse bytes that are not
HTTP/1.x, and the checks here only compare bytes, so no header can make a decoder raise.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, final

import attrs

from ._request_head import NotSimple, read_head
from ._target import origin_form

if TYPE_CHECKING:
    import h11

__all__ = [
    "MAX_HEAD_SIZE",
    "NEED_DATA",
    "H11HandshakeParser",
    "HandshakeParser",
    "NeedData",
    "PlainRequest",
    "Refusal",
    "Upgrade",
]

# RFC 6455 section 1.3: appended to the client's key to prove the server read it.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: The largest request head (request line and headers) accepted, in bytes.
MAX_HEAD_SIZE = 16 * 1024

# RFC 3986 section 3.2.2 (an IP literal or a reg-name, each with an optional port), the
# only Host values RFC 9112 section 3.2 lets a server accept.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")

# RFC 9110 section 5.6.2; a subprotocol name is one (RFC 6455 section 4.1).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# The headers of the handshake itself: their grammar is ASCII (h11 lets obs-text through).
_ASCII_HEADERS = frozenset(
    {
        "connection",
        "upgrade",
        "sec-websocket-extensions",
        "sec-websocket-key",
        "sec-websocket-protocol",
        "sec-websocket-version",
    }
)


@final
@attrs.frozen
class Upgrade:
    """A valid opening handshake, and the 101 that accepts it."""

    #: The request target (ASCII, still percent-encoded), with its query string.
    target: str
    #: Every header as received: lower-case names, latin-1 values, in order.
    headers: tuple[tuple[str, str], ...]
    #: The subprotocols offered, in the client's order.
    subprotocols: tuple[str, ...]
    #: The ``101 Switching Protocols`` response.
    response: bytes
    #: What the client sent after its request (its first frames, if it did not wait).
    trailing: bytes


@final
class NeedData:
    """`HandshakeParser.next_body` needs more bytes from the client first."""


NEED_DATA: Final = NeedData()


@final
@attrs.frozen
class PlainRequest:
    """An HTTP request without an upgrade: one for a room's HTTP routes."""

    #: Upper case: ``"POST"``.
    method: str
    #: The request target (ASCII, still percent-encoded), with its query string.
    target: str
    #: Every header as received: lower-case names, latin-1 values, in order.
    headers: tuple[tuple[str, str], ...]
    #: Whether the client waits for ``100 Continue`` before it sends its body.
    expects_continue: bool


@final
@attrs.frozen
class Refusal:
    """A handshake the server must answer with an HTTP error instead of a 101."""

    status: int
    body: str
    headers: tuple[tuple[str, str], ...] = ()


@final
class HandshakeParser:
    """Reads one opening handshake from the bytes fed to it.

    A request head over `MAX_HEAD_SIZE` is refused with 431.
    """

    __slots__ = ("_buffered", "_h11")

    def __init__(self) -> None:
        # What came before a head still incomplete (nothing, for nearly every client:
        # its whole head comes in one read, parsed where it arrived, without a copy).
        self._buffered: bytes | bytearray = b""
        #: Once the head is not simple: h11, given every byte from the start.
        self._h11: H11HandshakeParser | None = None

    def receive_data(self, data: bytes | bytearray) -> Upgrade | PlainRequest | Refusal | None:
        """Feed ``data`` (not empty); None until the request head is complete."""
        if self._h11 is not None:
            return self._h11.receive_data(data)
        buffered = self._buffered
        searched = len(buffered)
        if searched:
            buffered += data  # a bytearray: a head still incomplete was copied into one
        else:
            buffered = data
        # A head sent a byte at a time is not searched from its start for each byte.
        head = read_head(buffered, MAX_HEAD_SIZE, max(0, searched - 3))
        if head is None:
            if not searched:
                self._buffered = bytearray(data)
            return None
        if isinstance(head, NotSimple):
            return self._to_h11(buffered)
        if head.size > MAX_HEAD_SIZE:
            return _TOO_LARGE
        checked = _check(head.method, head.target, b"1.1", head.headers)
        if isinstance(checked, PlainRequest):
            return self._to_h11(buffered)  # h11 reads its body
        if isinstance(checked, Refusal):
            return checked
        self._buffered = b""
        return _upgrade(checked, bytes(buffered[head.size :]))

    def next_body(self, data: bytes | bytearray = b"") -> tuple[bytes, bool] | NeedData | None:
        """After a `PlainRequest`: feed ``data``, then the next piece of its body.

        Returns ``(piece, more)``, `NEED_DATA` when more bytes must be fed first, or None
        when the body is malformed (the request cannot be answered).
        """
        assert self._h11 is not None  # h11 read the request
        return self._h11.next_body(data)

    def _to_h11(self, buffered: bytes | bytearray) -> Upgrade | PlainRequest | Refusal | None:
        self._buffered = b""
        self._h11 = H11HandshakeParser()
        return self._h11.receive_data(buffered)


@final
class H11HandshakeParser:
    """`HandshakeParser` on h11 alone: what it hands a head that is not simple to."""

    __slots__ = ("_fed", "_h11", "_request")

    def __init__(self) -> None:
        # Imported by the few requests that need it: an embedded server whose clients
        # all send simple heads never has h11's objects in its heap.
        import h11

        # h11 bounds a head still incomplete; a complete one is measured below.
        self._h11: h11.Connection = h11.Connection(
            h11.SERVER, max_incomplete_event_size=MAX_HEAD_SIZE
        )
        self._fed = 0
        self._request: _Checked | None = None

    def receive_data(self, data: bytes | bytearray) -> Upgrade | PlainRequest | Refusal | None:
        """Feed ``data`` (not empty); None until the request head is complete."""
        import h11  # imported by `__init__`: one look-up

        parser = self._h11
        parser.receive_data(bytes(data))
        self._fed += len(data)
        try:
            while True:
                event = parser.next_event()
                if isinstance(event, h11.Request):
                    if self._fed - len(parser.trailing_data[0]) > MAX_HEAD_SIZE:
                        return _TOO_LARGE
                    headers = tuple(
                        (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                        for name, value in event.headers
                    )
                    checked = _check(event.method, event.target, event.http_version, headers)
                    if isinstance(checked, Refusal | PlainRequest):
                        return checked
                    self._request = checked
                elif event is h11.PAUSED:
                    assert self._request is not None  # h11 pauses after a whole request
                    return _upgrade(self._request, bytes(parser.trailing_data[0]))
                elif event is h11.NEED_DATA:
                    return None
        except h11.RemoteProtocolError as exc:
            # A transfer coding h11 does not know (its 501) is a bad handshake too:
            # a handshake has no body.
            # The body never echoes what the client sent.
            if exc.error_status_hint == 431:
                return _TOO_LARGE
            return Refusal(400, "Bad Request: malformed HTTP request")

    def next_body(self, data: bytes | bytearray = b"") -> tuple[bytes, bool] | NeedData | None:
        """`HandshakeParser.next_body`."""
        import h11  # imported by `__init__`: one look-up

        parser = self._h11
        if data:
            parser.receive_data(bytes(data))
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError:
            return None
        if event is h11.NEED_DATA:
            return NEED_DATA
        if isinstance(event, h11.Data):
            return bytes(event.data), True
        if isinstance(event, h11.EndOfMessage):
            return b"", False
        return None


def _upgrade(checked: _Checked, trailing: bytes) -> Upgrade:
    target, headers, subprotocols, key = checked
    digest = hashlib.sha1(key.encode("latin-1") + _ACCEPT_GUID, usedforsecurity=False).digest()
    response = b"".join((_SWITCHING, binascii.b2a_base64(digest, newline=False), b"\r\n\r\n"))
    return Upgrade(target, headers, subprotocols, response, trailing)


_SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"upgrade: websocket\r\n"
    b"connection: Upgrade\r\n"
    b"sec-websocket-accept: "
)

_TOO_LARGE = Refusal(431, "Request Header Fields Too Large: at most 16 KiB")

# What `_check` found valid: the target, every header, the subprotocols and the key.
_Checked = tuple[str, tuple[tuple[str, str], ...], tuple[str, ...], str]

# The headers the checks read: gathered in one pass over the request's.
_READ = _ASCII_HEADERS | {"content-length", "expect", "host", "transfer-encoding"}
_NONE: tuple[str, ...] = ()


def _check(
    method: bytes, target: bytes, http_version: bytes, headers: tuple[tuple[str, str], ...]
) -> _Checked | PlainRequest | Refusal:
    """The handshake's target, headers, subprotocols and key; a plain request; or a refusal."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        if name in _READ:
            if name in _ASCII_HEADERS and not value.isascii():
                return Refusal(400, f"Bad Request: non-ASCII bytes in {name}")
            values = found.get(name)
            if values is None:
                found[name] = [value]
            else:
                values.append(value)
    hosts = found.get("host", _NONE)
    if len(hosts) > 1:  # h11 has refused an HTTP/1.1 request without one
        return Refusal(400, "Bad Request: more than one Host header")
    if hosts and _HOST.fullmatch(hosts[0].encode("latin-1")) is None:
        return Refusal(400, "Bad Request: malformed Host header")
    if not target.isascii():
        return Refusal(400, "Bad Request: the request target must be ASCII")
    path = origin_form(target.decode("ascii"))  # routed as the path it names
    if not _has_token(found.get("upgrade", _NONE), "websocket"):
        return PlainRequest(
            method=method.decode("ascii").upper(),
            target=path,
            headers=headers,
            expects_continue="100-continue" in _tokens(found.get("expect", _NONE)),
        )
    # RFC 6455 section 4.1: "The method of the request MUST be GET, and the HTTP version
    # MUST be at least 1.1" (h11 parses only 1.0 and 1.1).
    if http_version != b"1.1":
        return Refusal(400, "Bad Request: a WebSocket handshake needs HTTP/1.1")
    if method != b"GET":
        return Refusal(400, "Bad Request: a WebSocket handshake is a GET")
    if not hosts:
        return Refusal(400, "Bad Request: a WebSocket handshake needs a Host header")
    if not _has_token(found.get("connection", _NONE), "upgrade"):
        return Refusal(400, "Expected websocket")
    versions = found.get("sec-websocket-version")
    if versions != ["13"]:
        # Section 4.4: a version the server does not speak gets 426 and the one it does.
        status = 426 if versions else 400
        body = f"{'Upgrade Required' if versions else 'Bad Request'}: WebSocket version 13"
        return Refusal(status, body, (("sec-websocket-version", "13"),))
    keys = found.get("sec-websocket-key", _NONE)
    if len(keys) != 1 or not _valid_key(keys[0]):
        return Refusal(400, "Bad Request: Sec-WebSocket-Key must be 16 bytes in base64")
    lengths = found.get("content-length")
    if "transfer-encoding" in found or (lengths is not None and lengths != ["0"]):
        return Refusal(400, "Bad Request: a WebSocket handshake has no body")
    offered = found.get("sec-websocket-protocol")
    if offered is None:  # most clients offer none
        return path, headers, _NONE, keys[0]
    subprotocols = tuple(token for token in _split(offered) if token)
    if not all(_TOKEN.fullmatch(subprotocol) for subprotocol in subprotocols):
        return Refusal(400, "Bad Request: malformed Sec-WebSocket-Protocol")
    return path, headers, subprotocols, keys[0]


def _split(values: Sequence[str]) -> list[str]:
    return [token.strip() for value in values for token in value.split(",")]


def _tokens(values: Sequence[str]) -> set[str]:
    return {token.lower() for token in _split(values)}


def _has_token(values: Sequence[str], token: str) -> bool:
    """Whether ``token`` (lower case) is one of the comma-separated ``values``."""
    if len(values) == 1 and values[0].lower() == token:  # the usual header: just it
        return True
    return token in _tokens(values)


def _valid_key(key: str) -> bool:
    """RFC 6455 section 4.1: a key is 16 random bytes in base64 (24 characters)."""
    try:
        return len(binascii.a2b_base64(key, strict_mode=True)) == 16
    except (binascii.Error, ValueError):
        return False
