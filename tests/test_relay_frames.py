"""Grouped FRAMES entries, without I/O: each frame once, each relay's order kept exactly."""

from __future__ import annotations

import pytest

from trio_rooms._core.outbound import BINARY, TEXT, Frame
from trio_rooms._delivery import COALESCE, DROP_OLDEST
from trio_rooms.backplane._relay_end import RelayEnd
from trio_rooms.backplane._relay_entries import FRAMES, EntryError, decode, encode
from trio_rooms.backplane._relay_frames import FrameGroup, KeyNumbers, grouped


def _payloads(frames: list[Frame]) -> list[bytes]:
    return [frame.payload for frame in frames]


async def test_each_relays_frames_come_out_in_its_order_and_each_frame_once() -> None:
    """Writers that hand a broadcast burst in any order, one of them with its own frames
    between, give one entry carrying each frame once and every relay its exact order."""
    ends = [RelayEnd("b", f"r{n}") for n in range(3)]
    ticks = [Frame(TEXT, b"tick%d" % n) for n in range(3)]
    mine = [Frame(TEXT, b"mine%d" % n) for n in range(3)]
    group = FrameGroup()
    group.add(ends[1], ticks)
    group.add(ends[0], [frame for pair in zip(ticks, mine, strict=True) for frame in pair])
    group.add(ends[2], ticks[:1])
    group.add(ends[2], ticks[1:])
    entry = decode(group.seal("a", KeyNumbers()))
    assert (entry.kind, entry.source, entry.relay, entry.seq) == (FRAMES, "a", "", 0)
    read = grouped(entry.source, entry.body)
    assert read.relays == [("r1", 1), ("r0", 1), ("r2", 1)]
    assert _payloads(read.frames[1]) == [b"tick0", b"mine0", b"tick1", b"mine1", b"tick2", b"mine2"]
    assert _payloads(read.frames[0]) == _payloads(read.frames[2]) == [b"tick0", b"tick1", b"tick2"]
    assert read.frames[0][0] is read.frames[1][0] is read.frames[2][0]  # one Frame, shared
    assert len(_frames_field(entry.body)) == 6
    assert [end.sent for end in ends] == [1, 1, 1]


async def test_a_shared_frame_behind_a_relays_last_one_breaks_its_order() -> None:
    """A frame grouped for another relay first, handed after a frame of its own with a
    higher index: the relay's order is listed, though it has every frame of the entry."""
    first, second = RelayEnd("b", "r1"), RelayEnd("b", "r2")
    tick, own = Frame(TEXT, b"tick"), Frame(TEXT, b"own")
    group = FrameGroup()
    assert group.add(first, [tick]) == 1  # index 0
    assert group.add(second, [own]) == 1  # index 1
    assert group.add(second, [tick]) == 0  # index 0 after 1: out of order
    assert group.add(first, [own]) == 0  # index 1 after 0: in order
    body = decode(group.seal("a", KeyNumbers())).body
    assert body[0] == (("r1", 1, None), ("r2", 1, (1, 0)))
    read = grouped("a", body)
    assert [_payloads(frames) for frames in read.frames] == [[b"tick", b"own"], [b"own", b"tick"]]


async def test_a_groups_first_single_frame_is_shared_and_ordered_as_any_other() -> None:
    """A group's first frame, handed alone (a reply, or a broadcast's first relay), is
    found again for the next relay, and keeps its relay's order; a relay handed nothing
    first and then that frame is in order too."""
    first, second, third = RelayEnd("b", "r1"), RelayEnd("b", "r2"), RelayEnd("b", "r3")
    tick, own = Frame(TEXT, b"tick"), Frame(TEXT, b"own")
    group = FrameGroup()
    assert group.add(third, []) == 0
    assert group.add(first, [tick]) == 1  # index 0
    assert group.add(first, [own]) == 1  # index 1, after its first
    assert group.add(second, [own, tick]) == 0  # both found: index 1, then 0
    assert group.add(third, [tick]) == 0
    assert len(group) == 2
    body = decode(group.seal("a", KeyNumbers())).body
    assert body[0] == (("r3", 1, (0,)), ("r1", 1, None), ("r2", 1, (1, 0)))
    read = grouped("a", body)
    assert [_payloads(frames) for frames in read.frames] == [
        [b"tick"],
        [b"tick", b"own"],
        [b"own", b"tick"],
    ]


async def test_a_relay_with_every_frame_in_order_lists_no_order() -> None:
    """Frames grouped for another relay first, handed in the same order: order None."""
    first, second = RelayEnd("b", "r1"), RelayEnd("b", "r2")
    ticks = [Frame(TEXT, b"tick%d" % n) for n in range(2)]
    group = FrameGroup()
    group.add(first, ticks)
    group.add(second, ticks)
    body = decode(group.seal("a", KeyNumbers())).body
    assert body[0] == (("r1", 1, None), ("r2", 1, None))


async def test_policies_cross_and_equal_keys_get_equal_numbers_of_their_node() -> None:
    """A frame's delivery policy crosses; equal coalescing keys become one key of the
    sending node, different keys different ones, and a drop-oldest frame has none."""
    end = RelayEnd("b", "r")
    frames = [
        Frame(TEXT, b"1", policy=COALESCE, key=("Moved", "e1")),
        Frame(TEXT, b"2", policy=COALESCE, key=("Moved", "e2")),
        Frame(BINARY, b"3", policy=COALESCE, key=("Moved", "e1")),
        Frame(TEXT, b"4", policy=DROP_OLDEST),
    ]
    group = FrameGroup()
    group.add(end, frames)
    entry = decode(group.seal("a", KeyNumbers()))
    (read,) = grouped(entry.source, entry.body).frames
    assert [(frame.opcode, frame.policy) for frame in read] == [
        (TEXT, COALESCE),
        (TEXT, COALESCE),
        (BINARY, COALESCE),
        (TEXT, DROP_OLDEST),
    ]
    assert read[0].key == read[2].key == ("a", 1)
    assert read[1].key == ("a", 2)
    assert read[3].key is None


def test_a_forgotten_key_gets_a_new_number_never_an_old_one() -> None:
    """Past its limit the numbering forgets every key, and numbers are never reused."""
    keys = KeyNumbers(limit=2)
    numbers = [keys.number(Frame(TEXT, b"", policy=COALESCE, key=key)) for key in "abcab"]
    assert numbers == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "body",
    [
        (),
        ((), ()),
        ((("r", 1, None),), ((0x9, b"ping", 0, 0),)),
        ((("r", 1, None),), ((TEXT, "text", 0, 0),)),
        ((("r", 1, None),), ((TEXT, b"x", 7, 0),)),
        ((("r", 1, (1,)),), ((TEXT, b"x", 0, 0),)),
        ((("r", -1, None),), ((TEXT, b"x", 0, 0),)),
        ((("r", 1, (-1,)),), ((TEXT, b"x", 0, 0),)),
        ((("r", 1, (True,)),), ((TEXT, b"x", 0, 0),)),
        ((("r", 1, "0"),), ((TEXT, b"x", 0, 0),)),
        ((("r", 1, None),), ((TEXT, b"x", 0, -1),)),
    ],
)
def test_a_malformed_frames_entry_is_refused(body: tuple[object, ...]) -> None:
    """A FRAMES body that is not one (no relays, a control frame, a str payload, an
    unknown policy, an order past its frames, a negative seq, a negative, boolean or
    missing index, a negative key number) raises EntryError."""
    with pytest.raises(EntryError):
        grouped("a", decode(encode(FRAMES, "a", "", 0, *body)).body)


def _frames_field(body: tuple[object, ...]) -> tuple[object, ...]:
    frames = body[1]
    assert isinstance(frames, tuple)
    return frames  # pyright: ignore[reportUnknownVariableType] - msgpack's arrays
