"""`InboundParser.whole`, the one-frame shortcut, says what `feed` would, or nothing.

Whatever the bytes and whatever the parser holds, a message from ``whole`` is exactly
what feeding the same bytes would have produced, and ``whole`` leaves the parser as
it found it when it declines.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_rooms.transports._inbound import InboundParser

from .sockets import BINARY, CONTINUATION, PING, TEXT, client_frame

LIMIT = 100

_frames = st.builds(
    client_frame,
    st.sampled_from([TEXT, BINARY, CONTINUATION, PING, 0x3]),
    st.one_of(st.binary(max_size=140), st.text(max_size=60).map(str.encode)),
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 0, 4]),
    key=st.sampled_from([b"\x37\xfa\x21\x3d", b"\x00\x00\x00\x00", None]),
)
_pieces = st.lists(_frames, max_size=3).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(before=_pieces, data=st.one_of(_frames, _pieces, st.binary(max_size=20)))
def test_whole_agrees_with_feed(before: bytes, data: bytes) -> None:
    shortcut, fed = InboundParser(LIMIT), InboundParser(LIMIT)
    for parser in (shortcut, fed):
        parser.feed(before)  # whatever state that leaves it in
        parser.events.clear()
    fed.feed(data)
    message = shortcut.whole(data)
    if message is None:
        shortcut.feed(data)
        assert list(shortcut.events) == list(fed.events)
    else:
        assert list(fed.events) == [message]
        assert type(message) is (str if data[0] & 0x0F == TEXT else bytes)
        fed.events.clear()  # taken, as the shortcut's message is
    assert shortcut.idle == fed.idle


def test_whole_takes_a_small_text_and_binary_frame() -> None:
    parser = InboundParser(LIMIT)
    assert parser.whole(client_frame(TEXT, "héllo".encode())) == "héllo"
    assert parser.whole(client_frame(BINARY, b"\x00\x01")) == b"\x00\x01"
    assert parser.whole(client_frame(TEXT, b"")) == ""
    assert parser.whole(client_frame(TEXT, b"x" * (LIMIT + 1))) is None  # over the limit
    assert parser.whole(client_frame(TEXT, b"\xff")) is None  # not UTF-8: feed fails it
    assert not parser.events
