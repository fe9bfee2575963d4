"""The books of a relayed session's inbound across a relay's loss, without Redis."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_rooms._core.request import ConnectRequest
from trio_rooms.backplane._relay_entries import (
    ACCEPTED,
    EntryError,
    accepted,
    decode,
    encode,
    gone,
    opening,
    opening_body,
)
from trio_rooms.backplane._relay_handover import ServedRelays, Unconfirmed


def test_confirmed_messages_are_forgotten_and_the_rest_resent_after_what_was_taken() -> None:
    """A relay's book keeps what CREDIT has not confirmed, and gives back what follows
    the owner's count of those its session took."""
    book = Unconfirmed("a", "r.1")
    for seq, message in enumerate(("m1", "m2", b"m3", "m4"), 2):
        book.sent(message, seq)
    book.confirm(2)
    assert len(book) == 2
    assert book.after(3) == ["m4"]
    with pytest.raises(ValueError, match="2 to 4 were possible"):
        _sent_four_confirmed_two().after(5)
    with pytest.raises(ValueError, match="2 to 4 were possible"):
        _sent_four_confirmed_two().after(1)


def _sent_four_confirmed_two() -> Unconfirmed:
    book = Unconfirmed("a", "r.1")
    for seq, message in enumerate(("m1", "m2", "m3", "m4"), 2):
        book.sent(message, seq)
    book.confirm(2)
    return book


def test_an_open_names_the_relay_it_resumes_and_accepted_says_what_that_one_took() -> None:
    """OPEN carries the lost relay's id (empty for none) and ACCEPTED its taken count,
    -1 when the owner does not know it; anything else is refused."""
    request = ConnectRequest(room="game", path="/rooms/game/websocket", query_string="")
    entry = decode(encode("o", "b", "r.2", 1, *opening_body(request, "json", 32, "r.1")))
    assert opening(entry.body).resumes == "r.1"
    fresh = decode(encode("o", "b", "r.1", 1, *opening_body(request, "json", 32)))
    assert opening(fresh.body).resumes == ""
    assert accepted(decode(encode(ACCEPTED, "a", "r.2", 1, 7)).body) == 7
    assert accepted((-1,)) is None
    for bad in ((), (-2,), (True,), ("7",)):
        with pytest.raises(EntryError):
            accepted(bad)


class _Relay:
    def __init__(self) -> None:
        self.taken = 3
        self.superseded = False

    def supersede(self) -> None:
        self.superseded = True


async def test_a_resumed_relay_waits_for_the_lost_one_to_end_and_learns_its_count() -> None:
    """Superseding a running relay breaks it and returns its count once its session
    ended; an unknown relay, or one past its keeping, is None."""
    served = ServedRelays()
    relay = _Relay()
    served.add("b", "r.1", relay)
    counts: list[int | None] = []
    async with trio.open_nursery() as nursery:

        async def supersede() -> None:
            counts.append(await served.supersede("b", "r.1", 10))

        nursery.start_soon(supersede)
        await trio.testing.wait_all_tasks_blocked()
        assert relay.superseded
        assert counts == []
        served.ended("b", "r.1", keep=0)
    assert counts == [3]
    assert await served.supersede("b", "r.9", 10) is None
    served.add("b", "r.2", _Relay())  # prunes r.1, kept for 0 s
    assert await served.supersede("b", "r.1", 10) is None


def test_what_the_owner_read_for_no_session_is_given_back_in_order() -> None:
    """A GONE answering entry 5 on: the messages of entries 5 and after were taken by
    nobody, so they leave the book (for the next owner) and the rest stay."""
    book = Unconfirmed("a", "r.1")
    for seq, message in enumerate(("m1", "m2", "m3", "m4"), 3):
        book.sent(message, seq)
    assert book.unread_from(5) == ["m3", "m4"]
    assert len(book) == 2
    assert book.after(1) == ["m2"]
    assert book.unread_from(9) == []
    assert gone(()) is None
    assert gone((7,)) == 7
    for bad in ((0,), (True,), ("7",), (7, 8)):
        with pytest.raises(EntryError):
            gone(bad)
