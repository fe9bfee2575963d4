"""``RoomsConfig.check_outbound``: a message not matching its annotations is refused at the call."""

from __future__ import annotations

from typing import Any, Literal, assert_never, cast

import attrs
import pytest
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, RoomsConfig, Session, testing
from trio_rooms.codec import WireFormat


@attrs.frozen
class Said(Message):
    user_id: str
    text: str


@attrs.frozen
class Report(Message):
    error: str


@attrs.frozen
class Probe(Message):
    how: Literal["send", "broadcast", "room"]


ServerMsg = Said | Report


def _wrong() -> Said:
    # The example: an int id and a None text, which pyright would refuse.
    return cast("Any", Said)(user_id=123, text=None)


class ProbeSession(Session[None, ServerMsg, Probe]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Probe) -> None:
        try:
            match message.how:
                case "send":
                    self.send(_wrong())
                case "broadcast":
                    self.broadcast(_wrong(), exclude_self=True)
                case "room":
                    self.room.broadcast(_wrong())
                case _:
                    assert_never(message.how)
        except TypeError as exc:
            self.send(Report(error=str(exc)))


class ProbeRoom(Room[ProbeSession]):
    pass


ERROR = "Said.user_id: expected str, got int @ $.userId; Said.text: expected str, got None @ $.text"


@pytest.mark.parametrize("format", ["json", "msgpack"])
@pytest.mark.parametrize("how", ["send", "broadcast", "room"])
async def test_send_and_broadcasts_raise_at_the_call(
    how: Literal["send", "broadcast", "room"], format: WireFormat
) -> None:
    """Session.send, Session.broadcast and Room.broadcast raise TypeError naming each field."""
    async with trio_rooms.open_rooms(ProbeRoom) as rooms:
        assert rooms.config.check_outbound  # the default
        async with testing.connect(rooms, "r", format=format) as client:
            client.send(Probe(how=how))
            assert await client.receive() == Report(error=ERROR)


async def test_a_broadcast_with_nobody_to_receive_it_is_checked_too() -> None:
    """The check runs once per broadcast, before the fan-out: an empty room raises all the same."""
    async with trio_rooms.open_rooms(ProbeRoom) as rooms:
        room = await rooms.get("empty")
        assert not room.sessions
        with pytest.raises(TypeError, match=r"Said\.user_id: expected str, got int @ \$\.userId"):
            room.broadcast(_wrong())
        with pytest.raises(TypeError, match="Probe is not one of the messages Said, Report"):
            room.broadcast(cast("Any", Probe(how="send")))


async def test_a_checked_broadcast_reaches_everyone_once() -> None:
    """A message that matches goes to every session, as without the check."""
    async with (
        trio_rooms.open_rooms(ProbeRoom) as rooms,
        testing.connect(rooms, "r") as ann,
        testing.connect(rooms, "r") as bob,
    ):
        room = await rooms.get("r")
        with trio.fail_after(5):
            await rooms.wait_statistics(lambda stats: stats.sessions == 2)
        room.broadcast(Said(user_id="u", text="hi"))
        assert await ann.receive() == Said(user_id="u", text="hi")
        assert await bob.receive() == Said(user_id="u", text="hi")


async def test_turned_off_the_message_goes_out_as_it_is() -> None:
    """With check_outbound=False nothing is checked: the client gets what the annotations deny."""
    config = RoomsConfig(check_outbound=False)
    async with (
        trio_rooms.open_rooms(ProbeRoom, config=config) as rooms,
        testing.connect(rooms, "r") as client,
    ):
        client.send(Probe(how="send"))
        assert await client.receive_frame() == '{"type":"said","userId":123,"text":null}'
