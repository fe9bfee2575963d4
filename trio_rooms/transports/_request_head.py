"""A strict reader of the simplest request heads: the handshake's fast path past h11.

Nearly every opening handshake has one shape: an HTTP/1.1 request line, then
``name: value`` lines ended by CRLF, one Host, no folding and no body. `read_head`
reads exactly that shape, with h11's grammar of RFC 9112 (the patterns below are
h11's), in one pass and without h11's state machine. Anything else, valid or not, is
`NOT_SIMPLE`: the caller gives all the bytes to h11, which reads them from the start.
So the server accepts and refuses what h11 alone would, byte for byte;
``tests/test_request_head.py`` compares the two on random heads cut at random points.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple, final

__all__ = ["NOT_SIMPLE", "Head", "NotSimple", "read_head"]

# h11's `_abnf`: token, request-target (vchar+) and a header field with optional
# whitespace around its value; the version is the only one read here.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.1")
_FIELD_VCHAR = rb"[^\x00\s]"
_HEADER_LINE = re.compile(
    rb"("
    + _TOKEN
    + rb"):[ \t]*((?:"
    + _FIELD_VCHAR
    + rb"+(?:[ \t]+"
    + _FIELD_VCHAR
    + rb"+)*)?)[ \t]*"
)

# h11 ends a head at the first LF, CR LF pair or LF LF: a head ended so (with a bare
# LF somewhere) is complete for h11 though it has no CR LF CR LF yet.
_H11_END = re.compile(rb"\n\r?\n")

# Headers h11 normalises (a list of equal lengths, the coding's case) or refuses: a
# request with either goes to h11. A handshake has neither.
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})

# A session keeps its request's headers as long as it lives, and most of its lines are
# every other client's too (the same Host, Upgrade, Origin...): one decoded pair per
# distinct line of these names serves them all, a few hundred bytes less per idle
# connection, and no match of the line. Unique lines (the key, cookies) are decoded each
# time. The cache starts over once it holds `_MAX_SHARED` lines: a client cannot grow
# it, nor keep the usual lines out of it for long.
_SHARED_NAMES = frozenset(
    {
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"connection",
        b"host",
        b"origin",
        b"pragma",
        b"sec-websocket-extensions",
        b"sec-websocket-version",
        b"upgrade",
        b"user-agent",
    }
)
_MAX_SHARED = 256
_shared: dict[bytes, tuple[str, str]] = {}


@final
class NotSimple:
    """The bytes are not a simple head: h11 must read them (from the start)."""


NOT_SIMPLE: Final = NotSimple()


@final
class Head(NamedTuple):
    """A simple request head, as h11 would have parsed it."""

    method: bytes
    #: ASCII, still percent-encoded, with its query string.
    target: bytes
    #: Lower-case names, latin-1 values (without the whitespace around them), in order.
    headers: tuple[tuple[str, str], ...]
    #: Its length in bytes, blank line included: what follows is the client's next bytes.
    size: int


def read_head(
    data: bytes | bytearray, max_incomplete: int, start: int = 0
) -> Head | NotSimple | None:
    """Read the request head at the start of ``data`` (not empty).

    Its end is searched for from ``start`` on (where a search of fewer bytes left
    off, less 3). Returns None while the head is incomplete and h11 would wait for more too;
    `NOT_SIMPLE` where h11 must decide: a head of another shape, bytes h11 refuses
    before the head is complete (its first byte not printable, over
    ``max_incomplete`` bytes without an end) or a head only h11 sees the end of.
    """
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        if (
            len(data) > max_incomplete
            or data[0] < 0x21
            or _H11_END.search(data, max(0, start - 1)) is not None
        ):
            return NOT_SIMPLE
        return None
    lines = bytes(data[:end]).split(b"\r\n")
    request = _REQUEST_LINE.fullmatch(lines[0])
    if request is None:
        return NOT_SIMPLE
    headers: list[tuple[str, str]] = []
    hosts = 0
    for line in lines[1:]:
        pair = _shared.get(line)  # a line read before: it matched, and means the same
        if pair is None:
            # A bare CR or LF, NUL or a folded line (leading whitespace) does not match.
            field = _HEADER_LINE.fullmatch(line)
            if field is None:
                return NOT_SIMPLE
            name = field[1].lower()
            if name in _BODY_HEADERS:
                return NOT_SIMPLE
            pair = (name.decode("ascii"), field[2].decode("latin-1"))
            if name in _SHARED_NAMES:
                if len(_shared) >= _MAX_SHARED:
                    _shared.clear()
                _shared[line] = pair
        if pair[0] == "host":
            hosts += 1
        headers.append(pair)
    if hosts != 1:  # h11 refuses HTTP/1.1 without a Host, or with two
        return NOT_SIMPLE
    return Head(request[1], request[2], tuple(headers), end + 4)
