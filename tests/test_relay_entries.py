"""Relay entries as the link writes them: several in one stream entry, one after another;
an OPEN or REQUEST of another protocol version refused."""

from __future__ import annotations

import msgpack
import pytest

from trio_rooms import ConnectRequest, HttpRequest
from trio_rooms.backplane._relay_entries import (
    BEAT,
    CREDIT,
    MESSAGE,
    OPEN,
    PROTOCOL,
    Entry,
    EntryError,
    EntryReader,
    VersionError,
    decode,
    decode_all,
    encode,
    message_head,
    opening,
    opening_body,
    pack,
    request_body,
    requested,
)
from trio_rooms.backplane._relay_link import _ENTRY_BYTES, _joined  # pyright: ignore[reportPrivateUsage]


def test_the_entries_of_one_stream_entry_come_out_in_order() -> None:
    """A MESSAGE, a CREDIT and a BEAT written back to back decode as those three, in order."""
    data = b"".join(
        [
            encode(MESSAGE, "a", "r.1", 1, "hi"),
            encode(CREDIT, "a", "r.2", 7, 16),
            encode(BEAT, "a", "", 0),
        ]
    )
    assert decode_all(data) == [
        Entry(MESSAGE, "a", "r.1", 1, ("hi",)),
        Entry(CREDIT, "a", "r.2", 7, (16,)),
        Entry(BEAT, "a", "", 0),
    ]


def test_a_bad_entry_among_good_ones_takes_only_its_own_place() -> None:
    """An array that is not an entry is an EntryError where it stood, the others kept;
    bytes that are not msgpack end the list with one."""
    good = encode(MESSAGE, "a", "r.1", 1, "hi")
    not_an_entry = encode("?", "a", "r.1", 2)
    found = decode_all(good + not_an_entry + good + b"\xc1")
    assert found[0] == found[2] == Entry(MESSAGE, "a", "r.1", 1, ("hi",))
    assert isinstance(found[1], EntryError)
    assert isinstance(found[3], EntryError)
    assert len(found) == 4


@pytest.mark.parametrize(
    "fields",
    [
        [MESSAGE, "a", "r.1"],
        [MESSAGE, "a", "r.1", True, "hi"],
        [MESSAGE, "a", "r.1", -1, "hi"],
        [MESSAGE, "a", "r.1", 1.0, "hi"],
        [MESSAGE, 1, "r.1", 1, "hi"],
        [MESSAGE, "a", b"r.1", 1, "hi"],
        [b"m", "a", "r.1", 1, "hi"],
        {"m": 1},
        "m",
    ],
)
def test_a_reader_refuses_every_malformed_head(fields: object) -> None:
    """Each way a stream's item may not be an entry's head is an EntryError in its place."""
    good = encode(MESSAGE, "a", "r.1", 1, "hi")
    bad: bytes = msgpack.packb(fields, use_bin_type=True)
    found = EntryReader().read(bad + good)
    assert isinstance(found[0], EntryError)
    assert found[1] == Entry(MESSAGE, "a", "r.1", 1, ("hi",))


def test_a_reader_reports_an_entry_cut_short_and_reads_the_next_stream_entry_whole() -> None:
    """The reader the link keeps for every stream entry reports one whose last entry is cut
    short, and does not read those bytes as the start of the next stream entry."""
    reader = EntryReader()
    good = encode(MESSAGE, "a", "r.1", 1, "hi")
    assert reader.read(good) == [Entry(MESSAGE, "a", "r.1", 1, ("hi",))]
    cut = reader.read(good + good[:-3])
    assert cut[0] == Entry(MESSAGE, "a", "r.1", 1, ("hi",))
    assert isinstance(cut[1], EntryError)
    assert len(cut) == 2
    assert reader.read(good + b"\xc1")[0] == Entry(MESSAGE, "a", "r.1", 1, ("hi",))
    assert reader.read(good) == [Entry(MESSAGE, "a", "r.1", 1, ("hi",))]


def test_a_turns_entries_to_one_node_are_split_in_order_at_the_size_cap() -> None:
    """Entries of a turn go out as few stream entries as the size cap allows, in order,
    and an entry larger than the cap goes alone, whole."""
    third = [bytes([n]) * (_ENTRY_BYTES // 3) for n in range(7)]
    large = b"L" * (2 * _ENTRY_BYTES)
    chunks = _joined([*third, large, b"s"])
    assert chunks == [b"".join(third[0:3]), b"".join(third[3:6]), third[6], large, b"s"]
    assert _joined([b"only"]) == [b"only"]


def _sent(body: tuple[object, ...]) -> tuple[object, ...]:
    """``body`` as the owner reads it from the stream (its arrays as tuples)."""
    return decode(encode(OPEN, "b", "r.1", 1, *body)).body


@pytest.mark.parametrize(("version", "said"), [(None, 1), (1, 1), (PROTOCOL + 1, PROTOCOL + 1)])
def test_an_open_or_request_of_another_protocol_version_is_refused_naming_it(
    version: int | None, said: int
) -> None:
    """An OPEN or REQUEST body that starts with another version than `PROTOCOL`, or with
    none (version 1's shape), raises `VersionError` carrying the version it says."""
    request = ConnectRequest(room="game", path="/rooms/game/websocket")
    route = HttpRequest(room="game", method="GET", path="/rooms/game/x")
    bodies = (
        (_sent(opening_body(request, "json", 32)), opening),
        (_sent(request_body(route)), requested),
    )
    for body, read in bodies:
        current = body[1:] if version is None else (version, *body[1:])
        with pytest.raises(VersionError, match=f"protocol {said}; this node speaks") as raised:
            read(current)
        assert raised.value.version == said
    assert opening(bodies[0][0]).request == request
    assert requested(bodies[1][0]) == route


def test_an_entry_that_cannot_be_packed_leaves_nothing_behind_for_the_next() -> None:
    """Entries share one packer: one that fails to pack raises, and the next is whole."""
    with pytest.raises(TypeError):
        encode(MESSAGE, "a", "r.1", 1, object())
    assert decode(encode(MESSAGE, "a", "r.1", 2, "hi")) == Entry(MESSAGE, "a", "r.1", 2, ("hi",))


@pytest.mark.parametrize("seq", [1, 127, 128, 65_536, 2**40])
@pytest.mark.parametrize("message", ["", "ping", "é" * 40, b"", b"\x00\xff" * 200])
def test_a_message_made_from_its_relays_head_is_the_entry_encode_makes(
    seq: int, message: str | bytes
) -> None:
    """`message_head` and `pack` give a MESSAGE's very bytes (`RelayLink.try_message`),
    whatever the size of its seq and of the message, text or binary."""
    source, relay = "0123456789abcdef", "abcd1234.17"
    data = message_head(source, relay) + pack(seq) + pack(message)
    assert data == encode(MESSAGE, source, relay, seq, message)
    assert decode(data) == Entry(MESSAGE, source, relay, seq, (message,))
