"""The handshake's fast reader of request heads (`read_head`), against h11 alone.

Random request heads, most of them near a real handshake (header names in any case,
odd whitespace, bare CR or LF, folded lines, NUL and non-ASCII bytes, bodies, several
Hosts, heads around the 16 KiB limit, bytes after the head), cut at random points, must
give `HandshakeParser` the outcome `H11HandshakeParser` gives: the same upgrade (target,
headers, subprotocols, 101, trailing bytes), the same plain request and body, the same
refusal, or the same wait for more bytes.
"""

from __future__ import annotations

from itertools import pairwise

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_rooms.transports import _handshake, _request_head
from trio_rooms.transports._handshake import (
    MAX_HEAD_SIZE,
    H11HandshakeParser,
    HandshakeParser,
    NeedData,
    PlainRequest,
    Refusal,
    Upgrade,
)
from trio_rooms.transports._request_head import NOT_SIMPLE, Head, read_head

from .sockets import handshake_request

Outcome = Upgrade | PlainRequest | Refusal | None

_GOOD_LINES = [
    b"Host: 127.0.0.1:8000",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
]

_NAMES = [
    b"Host",
    b"host",
    b"HOST",
    b"Upgrade",
    b"Connection",
    b"Sec-WebSocket-Key",
    b"Sec-WebSocket-Version",
    b"Sec-WebSocket-Protocol",
    b"Sec-WebSocket-Extensions",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Expect",
    b"Origin",
    b"X-A",
    b"",
    b"X A",
    b"X\x00",
    b"\xe9",
]

_VALUES = [
    b"websocket",
    b"Upgrade",
    b"keep-alive, Upgrade",
    b"13",
    b"8",
    b"dGhlIHNhbXBsZSBub25jZQ==",
    b"chat, superchat",
    b"a b",
    b"127.0.0.1",
    b"[::1",
    b"",
    b"a\x00b",
    b"a\x0bb",
    b"\xe9t\xe9",
    b"chunked",
    b"gzip",
    b"0",
    b"5",
    b"0, 0",
    b"100-continue",
]


def _maybe(draw: st.DrawFn, usual: bytes, others: list[bytes]) -> bytes:
    """``usual`` about three times in four, else one of ``others``."""
    # Hypothesis draws small integers more often than large ones.
    return draw(st.sampled_from(others)) if draw(st.integers(0, 3)) == 3 else usual


@st.composite
def _field(draw: st.DrawFn) -> bytes:
    """A header line of any shape: a field, a folded line or raw bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from([b" x", b"\tx", b" "]))  # folded
    if kind == 1:
        return draw(st.binary(max_size=12))
    if kind < 5:  # a real handshake's line again, in its case or lower case
        line = draw(st.sampled_from(_GOOD_LINES))
        return line.lower() if draw(st.booleans()) else line
    name = draw(st.sampled_from(_NAMES))
    colon = _maybe(draw, b": ", [b":", b":\t", b" :", b":  ", b""])
    value = draw(st.one_of(st.sampled_from(_VALUES), st.binary(max_size=6)))
    after = _maybe(draw, b"", [b" ", b"\t", b" \t"])
    return name + colon + value + after


@st.composite
def _lines(draw: st.DrawFn) -> list[bytes]:
    """Header lines: a real handshake's, some dropped, and some added anywhere."""
    lines = [] if draw(st.integers(0, 4)) == 4 else list(_GOOD_LINES)
    for _ in range(draw(st.integers(0, 3))):
        if lines and not draw(st.integers(0, 3)):
            del lines[draw(st.integers(0, len(lines) - 1))]
        else:
            lines.insert(draw(st.integers(0, len(lines))), draw(_field()))
    return lines


@st.composite
def _requests(draw: st.DrawFn, *, shaped: bool = False) -> bytes:
    """A request; ``shaped``: a request line and line ends as in a handshake."""
    method, target, version, space = b"GET", b"/rooms/lobby/websocket", b"HTTP/1.1", b" "
    if not shaped:
        method = _maybe(draw, method, [b"POST", b"get", b"G@T", b""])
        target = _maybe(draw, target, [b"/r?resume=", b"*", b"/\xe9", b"/a b", b""])
        version = _maybe(draw, version, [b"HTTP/1.0", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "])
        space = _maybe(draw, space, [b"  ", b"\t"])
    lines = [method + space + target + b" " + version, *draw(_lines())]
    if not draw(st.integers(0, 3)):  # around the limit
        size = len(b"\r\n".join(lines)) + len(b"\r\nX-Pad: \r\n\r\n")
        pad = MAX_HEAD_SIZE - size + draw(st.sampled_from([-1, 0, 1, 2, 4000]))
        lines.append(b"X-Pad: " + b"p" * max(0, pad))
    endings = [b"\r\n"] * len(lines)
    start, blank = b"", b"\r\n"
    if not shaped:
        if draw(st.integers(0, 3)) == 3:
            ends = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n"])
            endings = [draw(ends) for _ in lines]
        start = _maybe(draw, start, [b"\r\n", b" "])
        blank = _maybe(draw, blank, [b"\n", b""])
    head = b"".join(line + end for line, end in zip(lines, endings, strict=True))
    return start + head + blank + draw(st.binary(max_size=12))


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:end] for start, end in pairwise(bounds) if end > start]


def _feed(parser: HandshakeParser | H11HandshakeParser, pieces: list[bytes]) -> list[object]:
    """Each piece's outcome up to the first that is not None, then a plain request's body."""
    outcomes: list[object] = []
    for piece in pieces:
        outcome: Outcome = parser.receive_data(piece)
        outcomes.append(outcome)
        if outcome is not None:
            break
    if isinstance(outcomes[-1], PlainRequest):
        for _ in range(5):
            body = parser.next_body()
            outcomes.append("need data" if isinstance(body, NeedData) else body)
            if not isinstance(body, tuple) or not body[1]:
                break
    return outcomes


@settings(max_examples=1000, deadline=None)
@given(_requests(), st.lists(st.integers(0, 20_000), max_size=6))
def test_the_handshake_parser_agrees_with_h11_however_the_reads_are_cut(
    request: bytes, cuts: list[int]
) -> None:
    """Each read gives the outcome h11 alone gives: upgrade, plain request and body, refusal."""
    pieces = _pieces(request, cuts)
    assert _feed(HandshakeParser(), pieces) == _feed(H11HandshakeParser(), pieces)


@settings(max_examples=1000, deadline=None)
@given(_requests(shaped=True), st.lists(st.integers(0, 20_000), max_size=6))
def test_the_parser_agrees_with_h11_on_handshakes_of_any_headers(
    request: bytes, cuts: list[int]
) -> None:
    """With a handshake's request line and line ends, any headers give h11's outcome."""
    pieces = _pieces(request, cuts)
    assert _feed(HandshakeParser(), pieces) == _feed(H11HandshakeParser(), pieces)


def _h11_head(data: bytes) -> tuple[bytes, bytes, tuple[tuple[str, str], ...], int]:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(data)
    event = connection.next_event()
    assert isinstance(event, h11.Request)
    headers = tuple(
        (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
        for name, value in event.headers
    )
    size = len(data) - len(connection.trailing_data[0])
    return bytes(event.method), bytes(event.target), headers, size


_BROWSER = (
    b"GET /rooms/lobby/websocket?format=msgpack HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: http://localhost:8000\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Cookie: a=b; c=d\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"\r\n"
)


def test_a_browser_handshake_is_read_without_h11_as_h11_reads_it() -> None:
    """A browser's and the test client's handshakes take the fast path, with h11's parse."""
    for request in (_BROWSER, handshake_request("/rooms/lobby/websocket"), _BROWSER + b"\x81"):
        head = read_head(request, MAX_HEAD_SIZE)
        assert isinstance(head, Head)
        assert (head.method, head.target, head.headers, head.size) == _h11_head(request)


def test_heads_of_another_shape_are_left_to_h11() -> None:
    """Folded lines, bare LFs, a body, two Hosts or HTTP/1.0 are h11's to read."""
    good = handshake_request("/rooms/lobby/websocket")
    for request in (
        good.replace(b"Upgrade: websocket\r\n", b"Upgrade:\r\n websocket\r\n"),
        good.replace(b"\r\n", b"\n"),
        good.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
        good.replace(b"\r\n\r\n", b"\r\nHost: other\r\n\r\n"),
        good.replace(b"HTTP/1.1", b"HTTP/1.0"),
    ):
        assert read_head(request, MAX_HEAD_SIZE) is NOT_SIMPLE


def test_an_incomplete_head_waits_unless_h11_would_refuse_it_now() -> None:
    """A head cut short waits; one h11 refuses early (a control byte first, 16 KiB) does not."""
    good = handshake_request("/rooms/lobby/websocket")
    assert read_head(good[:-2], MAX_HEAD_SIZE) is None
    assert read_head(b"\x16\x03\x01", MAX_HEAD_SIZE) is NOT_SIMPLE
    assert read_head(good[:-2] + b"p" * MAX_HEAD_SIZE, MAX_HEAD_SIZE) is NOT_SIMPLE


def _upgrade_head(host: bytes, key: bytes) -> bytes:
    return (
        b"GET /rooms/a/websocket HTTP/1.1\r\nHost: " + host + b"\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )


def test_heads_share_the_decoded_pairs_of_their_common_lines_but_not_their_keys() -> None:
    """Two handshakes from the same Host share its decoded line; their keys stay their own."""
    read_head(_upgrade_head(b"shared.example", b"d2FybWluZy11cC13YXJtaW5nLQ=="), 4096)
    first = read_head(_upgrade_head(b"shared.example", b"a2V5LW9uZS1vbmUtb25lLQ=="), 4096)
    second = read_head(_upgrade_head(b"shared.example", b"a2V5LXR3by10d28tdHdvLQ=="), 4096)
    assert isinstance(first, Head)
    assert isinstance(second, Head)
    assert first.headers[0] == ("host", "shared.example")
    assert first.headers[0] is second.headers[0]  # one pair for every session
    assert first.headers[1] is second.headers[1]  # upgrade: websocket
    assert first.headers[3] == ("sec-websocket-key", "a2V5LW9uZS1vbmUtb25lLQ==")
    assert second.headers[3] == ("sec-websocket-key", "a2V5LXR3by10d28tdHdvLQ==")


def test_the_shared_lines_never_pass_their_bound_and_heads_still_read_right() -> None:
    """Past `_MAX_SHARED` distinct lines the cache starts over, and every head reads the same."""
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    for number in range(2 * _request_head._MAX_SHARED):  # pyright: ignore[reportPrivateUsage] - the bound under test
        host = b"host-%d.example" % number
        head = read_head(_upgrade_head(host, key), 4096)
        assert isinstance(head, Head)
        assert head.headers[0] == ("host", host.decode())
    assert len(_request_head._shared) <= _request_head._MAX_SHARED  # pyright: ignore[reportPrivateUsage] - the bound under test


_TOKEN_VALUES = st.lists(
    st.one_of(
        st.sampled_from(["websocket", "WebSocket", "Upgrade", "upgrade", "keep-alive, Upgrade"]),
        st.text(alphabet=" ,\tabcdeginoprstuwkUW-", max_size=20),
    ),
    max_size=3,
)


@settings(max_examples=500, deadline=None)
@given(_TOKEN_VALUES, st.sampled_from(["websocket", "upgrade"]))
def test_the_one_token_shortcut_agrees_with_splitting_every_value(
    values: list[str], token: str
) -> None:
    """Whether Upgrade or Connection names a token is the same with or without the shortcut."""
    split = {part.strip().lower() for value in values for part in value.split(",")}
    assert _handshake._has_token(values, token) == (token in split)  # pyright: ignore[reportPrivateUsage] - the shortcut under test
