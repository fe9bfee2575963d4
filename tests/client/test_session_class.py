"""A client typed by the server's session class, against a real server that is newer than it."""

from __future__ import annotations

from typing import assert_type

import attrs
import pytest
import trio

import trio_rooms
from trio_rooms import ConnectRequest, DecodeError, Message, Room, Session
from trio_rooms.client import RoomClient, open_room_client
from trio_rooms.codec import WireFormat


@attrs.frozen
class Say(Message):
    text: str


@attrs.frozen
class Joined(Message):
    name: str


@attrs.frozen
class Said(Message):
    text: str
    from_: str = attrs.field(metadata=trio_rooms.wire("from"))


@attrs.frozen
class Poll(Message):
    """A message type the server added after the client was released."""

    question: str


class OldSession(Session[None, Joined | Said, Say]):
    """The session class as the client's release knew it."""

    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Say) -> None:
        self.send(Said(text=message.text, from_=self.id))


class NewSession(Session[None, Joined | Said | Poll, Say]):
    """The server's session class now: it also sends polls."""

    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.send(Poll(question="tea?"))
        self.send(Joined(name="ann"))

    async def on_message(self, message: Say) -> None:
        self.send(Poll(question="coffee?"))
        self.send(Said(text=message.text, from_=self.id))


class NewRoom(Room[NewSession]):
    pass


@pytest.mark.parametrize("format", ["json", "msgpack"])
async def test_a_newer_message_type_is_skipped_not_the_end_of_iteration(
    nursery: trio.Nursery, format: WireFormat, caplog: pytest.LogCaptureFixture
) -> None:
    """Messages the client's session class does not know are logged and skipped by async for."""
    async with trio_rooms.open_rooms(NewRoom) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}/rooms/lobby/websocket"
        async with open_room_client(url, OldSession, format=format) as client:
            assert_type(client, RoomClient[Joined | Said, Say])
            client.send(Say(text="hi"))
            received: list[Joined | Said] = []
            with trio.fail_after(10):
                async for message in client:
                    received.append(message)
                    if isinstance(message, Said):
                        break
            assert received == [Joined(name="ann"), Said(text="hi", from_=client.session_id or "")]
        nursery.cancel_scope.cancel()
    skipped = [r.getMessage() for r in caplog.records if r.name == "trio_rooms.client"]
    assert len(skipped) == 2
    assert all("unknown message type 'poll'" in text for text in skipped)


async def test_on_invalid_gets_the_newer_messages_with_their_frames(nursery: trio.Nursery) -> None:
    """With on_invalid, each unknown message comes to the hook with its raw frame."""
    invalid: list[DecodeError] = []
    async with trio_rooms.open_rooms(NewRoom) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}/rooms/lobby/websocket"
        async with open_room_client(url, OldSession, on_invalid=invalid.append) as client:
            assert await client.receive() == Joined(name="ann")
        nursery.cancel_scope.cancel()
    assert [e.frame for e in invalid] == ['{"type":"poll","question":"tea?"}']


async def test_the_tuple_form_still_works(nursery: trio.Nursery) -> None:
    """Without the server's code, the two tuples of classes type the client the same way."""
    async with trio_rooms.open_rooms(NewRoom) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}/rooms/lobby/websocket"
        async with open_room_client(url, server=(Joined, Said, Poll), client=(Say,)) as client:
            assert_type(client, RoomClient[Joined | Said | Poll, Say])
            assert await client.receive() == Poll(question="tea?")
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("server", "client", "error"),
    [
        (NewRoom, None, "expected a Session subclass or two tuples of message classes"),
        ((Joined,), None, "expected a Session subclass or two tuples of message classes"),
        (OldSession, (Say,), "expected a session class alone, or a tuple of server"),
    ],
)
async def test_wrong_arguments_are_a_type_error(server: object, client: object, error: str) -> None:
    """Something that is neither a session class nor two tuples fails before connecting."""
    with pytest.raises(TypeError, match=error):
        async with open_room_client("ws://127.0.0.1:1/x", server, client):  # pyright: ignore[reportArgumentType] - on purpose
            pass
