"""Relay entries as the link writes them: several in one stream entry, one after another."""

from __future__ import annotations

from trio_rooms.backplane._relay_entries import (
    BEAT,
    CREDIT,
    MESSAGE,
    Entry,
    EntryError,
    decode_all,
    encode,
)


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
