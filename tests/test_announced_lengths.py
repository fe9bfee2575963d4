"""The embedded server reads client frame headers alongside wsproto (`AnnouncedLengths`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_rooms.transports._framing import AnnouncedLengths

from .sockets import BINARY, CLOSE, CONTINUATION, PING, TEXT, client_frame

_frames = st.lists(
    st.tuples(
        st.sampled_from([CONTINUATION, TEXT, BINARY, PING, CLOSE]),
        st.integers(0, 70_000),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@given(_frames, st.lists(st.integers(1, 100_000), max_size=20))
def test_the_largest_announced_data_frame_is_found_however_the_reads_are_cut(
    frames: list[tuple[int, int, bool]], cuts: list[int]
) -> None:
    stream = b"".join(
        client_frame(opcode, b"x" * size, key=b"abcd" if masked else None)
        for opcode, size, masked in frames
    )
    lengths = AnnouncedLengths()
    largest = 0
    start = 0
    for cut in sorted({min(cut, len(stream)) for cut in cuts} | {len(stream)}):
        largest = max(largest, lengths.feed(stream[start:cut]))
        start = cut
    data_sizes = [size for opcode, size, _ in frames if opcode < 0x8]
    assert largest == max(data_sizes, default=0)


def test_a_header_alone_announces_its_length() -> None:
    lengths = AnnouncedLengths()
    header = client_frame(TEXT, b"", length=2**63 - 1)[:14]
    assert lengths.feed(header[:1]) == 0
    assert lengths.feed(header[1:5]) == 0
    assert lengths.feed(header[5:]) == 2**63 - 1
