"""The embedded server's own parser of client frames (`InboundParser`), against wsproto.

Random frame sequences (fragmented messages with control frames between their pieces,
bad frames, close frames of every kind), cut at random points, must give the same
messages, pings and end (a peer close, or a failure and its close code) as wsproto,
with the size limit the server kept on top of it. The only divergence is by design:
a message over the limit is refused by its frame's header, before its payload is
read, so whether an oversized text frame is also bad UTF-8 is never looked at; and the
limit counts a text fragment's bytes as they arrive, where wsproto's decoder holds back a
codepoint cut between fragments until its last byte (so a control frame in between comes
before its 1009 there, after it here). Those streams are compared without a limit.
"""

from __future__ import annotations

from itertools import pairwise
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from trio_rooms.transports._inbound import Closed, Failed, InboundParser, unmask
from trio_rooms.transports._inbound import Ping as InboundPing

from .sockets import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, mask

_KEY = b"\x37\xfa\x21\x3d"
_UNLIMITED = 2**63

#: ("text", str) | ("bytes", bytes) | ("ping", bytes) | ("closed", code, reason) | ("failed", code)
Outcome = tuple[object, ...]


def _frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = _KEY,
    form: int | None = None,
) -> bytes:
    """A client frame; ``form`` 126 or 127 forces that length encoding, minimal or not."""
    size = len(payload)
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    bit = 0x80 if key is not None else 0
    if form is None:
        form = size if size < 126 else 126 if size < 65536 else 127
    if form == 126:
        header = bytes([first, bit | 126]) + size.to_bytes(2, "big")
    elif form == 127:
        header = bytes([first, bit | 127]) + size.to_bytes(8, "big")
    else:
        header = bytes([first, bit | size])
    return header + (payload if key is None else key + mask(payload, key))


class Stream(NamedTuple):
    data: bytes
    #: Whether a text payload in it may be bad UTF-8.
    bad_text: bool
    #: The data frames' payload bytes, all told.
    data_bytes: int
    #: Whether a text message in it is cut between fragments inside a codepoint.
    split_codepoint: bool


_text = st.one_of(
    st.text(max_size=40).map(str.encode),
    st.sampled_from([b"\xc3\xa9" * 70, "\u20ac".encode() * 22_000, b"a" * 126]),
)
_binary = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([0, 125, 126, 65535, 65536, 70_000]).map(
        lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)
    ),
)
_keys = st.one_of(st.just(_KEY), st.binary(min_size=4, max_size=4))


@st.composite
def _message(draw: st.DrawFn) -> tuple[list[bytes], bool, int, bool]:
    """A text or binary message cut into fragments (anywhere, codepoints too), pings between."""
    text = draw(st.booleans())
    payload = draw(_text if text else _binary)
    bad = text and draw(st.booleans())
    if bad:
        payload = draw(st.binary(max_size=12))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    pieces = [payload[a:b] for a, b in pairwise([0, *cuts, len(payload)])]
    # A cut before a continuation byte (10xxxxxx) falls inside a codepoint.
    split = text and any(0 < cut < len(payload) and payload[cut] & 0xC0 == 0x80 for cut in cuts)
    frames: list[bytes] = []
    for index, piece in enumerate(pieces):
        opcode = (TEXT if text else BINARY) if index == 0 else CONTINUATION
        frames.append(_frame(opcode, piece, fin=index == len(pieces) - 1, key=draw(_keys)))
        if index < len(pieces) - 1 and draw(st.integers(0, 3)) == 0:
            frames.append(_frame(draw(st.sampled_from([PING, PONG])), draw(st.binary(max_size=8))))
    return frames, bad, len(payload), split


_close_codes = st.sampled_from(
    [0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1013, 1014, 1015, 1016,
     2999, 3000, 4000, 4999, 5000, 65535]
)  # fmt: skip


@st.composite
def _close(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        payload = b""
    elif kind == 1:
        payload = draw(st.binary(min_size=1, max_size=1))
    else:
        reason = draw(st.text(max_size=20).map(str.encode)) if kind == 2 else b"\xff\xfe"
        payload = draw(_close_codes).to_bytes(2, "big") + reason
    return _frame(CLOSE, payload)


@st.composite
def _odd_frame(draw: st.DrawFn) -> tuple[bytes, int]:
    """Any header: unknown opcodes, reserved bits, no mask, long or fragmented control frames."""
    opcode = draw(st.integers(0, 15))
    payload = draw(st.one_of(st.binary(max_size=20), st.just(b"p" * 130)))
    frame = _frame(
        opcode,
        payload,
        fin=draw(st.sampled_from([True, True, False])),
        rsv=draw(st.sampled_from([0, 0, 0, 1, 2, 4])),
        key=draw(st.sampled_from([_KEY, _KEY, None])),
        form=draw(st.sampled_from([None, None, None, 126, 127])),
    )
    return frame, len(payload) if opcode < 0x8 else 0


@st.composite
def _streams(draw: st.DrawFn) -> Stream:
    frames: list[bytes] = []
    bad_text, data_bytes, split_codepoint = False, 0, False
    for kind in draw(st.lists(st.sampled_from("mmmmpcx"), max_size=8)):
        if kind == "m":
            message, bad, size, split = draw(_message())
            frames += message
            bad_text |= bad
            data_bytes += size
            split_codepoint |= split
        elif kind == "p":
            payload = draw(st.binary(max_size=125))
            frames.append(_frame(draw(st.sampled_from([PING, PONG])), payload))
        elif kind == "c":
            frames.append(draw(_close()))
        else:
            frame, size = draw(_odd_frame())
            frames.append(frame)
            bad_text = True  # may carry anything as text
            data_bytes += size
    return Stream(b"".join(frames), bad_text, data_bytes, split_codepoint)


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts} | {len(data)})
    return [data[a:b] for a, b in pairwise([0, *points]) if b > a]


def _ours(pieces: list[bytes], max_size: int) -> list[Outcome]:
    parser = InboundParser(max_size)
    outcomes: list[Outcome] = []
    for piece in pieces:
        parser.feed(piece)
        while parser.events:
            event = parser.events.popleft()
            if isinstance(event, str):
                outcomes.append(("text", event))
            elif isinstance(event, bytes):
                outcomes.append(("bytes", event))
            elif isinstance(event, InboundPing):
                outcomes.append(("ping", event.payload))
            elif isinstance(event, Closed):
                return [*outcomes, ("closed", event.code, event.reason)]
            else:
                return [*outcomes, ("failed", event.code)]
    return outcomes


def _wsproto(pieces: list[bytes], max_size: int) -> list[Outcome]:
    """What wsproto gives, with the limit the server kept on a message's size."""
    connection = Connection(ConnectionType.SERVER)
    outcomes: list[Outcome] = []
    text: list[str] = []
    binary: list[bytes] = []
    size = 0
    for piece in pieces:
        connection.receive_data(piece)
        for event in connection.events():
            if isinstance(event, TextMessage | BytesMessage):
                data = event.data
                if isinstance(data, str):
                    size += len(data.encode())
                    text.append(data)
                else:
                    size += len(data)
                    binary.append(bytes(data))
                if size > max_size:
                    return [*outcomes, ("failed", 1009)]
                if event.message_finished:
                    if isinstance(data, str):
                        outcomes.append(("text", "".join(text)))
                    else:
                        outcomes.append(("bytes", b"".join(binary)))
                    text, binary, size = [], [], 0
            elif isinstance(event, Ping):
                outcomes.append(("ping", bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                # wsproto reports a protocol error as a close that leaves it OPEN.
                if connection.state is ConnectionState.OPEN:
                    return [*outcomes, ("failed", int(event.code))]
                return [*outcomes, ("closed", int(event.code), event.reason or "")]
    return outcomes


@settings(max_examples=600, deadline=None)
@given(
    _streams(),
    st.lists(st.integers(0, 200_000), max_size=12),
    st.one_of(st.just(_UNLIMITED), st.integers(0, 80_000)),
)
def test_the_parser_agrees_with_wsproto_however_the_reads_are_cut(
    stream: Stream, cuts: list[int], max_size: int
) -> None:
    """Messages, pings and the end (close code, reason, or failure code) equal wsproto's."""
    if (stream.bad_text or stream.split_codepoint) and max_size < stream.data_bytes:
        max_size = _UNLIMITED  # the divergences by design (module docstring)
    pieces = _pieces(stream.data, cuts)
    assert _ours(pieces, max_size) == _wsproto([stream.data], max_size)
    # wsproto itself does not depend on the cuts, so neither does the comparison.
    assert _ours([stream.data], max_size) == _ours(pieces, max_size)


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_unmasking_is_its_own_inverse_and_matches_a_byte_wise_xor(
    payload: bytes, key: bytes
) -> None:
    """``unmask`` XORs each byte with the key byte at its position modulo 4."""
    expected = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    assert unmask(payload, key) == expected
    assert unmask(expected, key) == payload


def test_a_header_announcing_too_much_fails_before_its_payload_arrives() -> None:
    """A frame announcing 2**63 - 1 bytes is refused with 1009 from its 14-byte header alone."""
    parser = InboundParser(1024)
    header = _frame(BINARY, b"", form=127)[:2] + (2**63 - 1).to_bytes(8, "big") + _KEY
    for byte in header:
        parser.feed(bytes([byte]))
    assert list(parser.events) == [Failed(1009, "message too big")]
    # Its bytes are skipped, not kept: the parser still sees the close frame after them.
    parser.feed(b"\x00" * 65536)
    assert len(parser.events) == 1


def test_the_rest_of_an_oversized_message_is_skipped_and_the_close_after_it_is_read() -> None:
    """After a 1009, the message's later fragments are dropped and the peer's close ends it."""
    parser = InboundParser(10)
    parser.feed(
        _frame(TEXT, b"a" * 8, fin=False)
        + _frame(CONTINUATION, b"b" * 8, fin=False)
        + _frame(PING, b"still read")
        + _frame(CONTINUATION, b"c" * 8)
        + _frame(CLOSE, (1000).to_bytes(2, "big") + b"bye")
    )
    assert list(parser.events) == [
        Failed(1009, "message too big"),
        InboundPing(b"still read"),
        Closed(1000, "bye"),
    ]


def test_after_a_protocol_error_the_next_read_is_parsed_afresh() -> None:
    """A broken frame drops the rest of its read; the next read's close frame is found."""
    parser = InboundParser(1024)
    parser.feed(_frame(TEXT, b"hi", rsv=4) + _frame(TEXT, b"dropped"))
    parser.feed(_frame(CLOSE, b""))
    assert list(parser.events) == [
        Failed(1002, "reserved bits set without an extension"),
        Closed(1005, ""),
    ]


def test_every_close_code_is_taken_or_refused_as_wsproto_does() -> None:
    """Codes 0 to 5100 and 65535 in a close frame: the same close, or the same failure."""
    for code in [*range(5101), 65535]:
        frame = _frame(CLOSE, code.to_bytes(2, "big") + b"why")
        assert _ours([frame], _UNLIMITED) == _wsproto([frame], _UNLIMITED), code
