"""The client against a real server on 127.0.0.1: typed messages, closes, bad frames."""

from __future__ import annotations

from typing import assert_type

import attrs
import pytest
import trio

from trio_rooms import ConnectionClosedError, DecodeError, Message, Rooms
from trio_rooms.client import (
    ConnectionRejectedError,
    Reconnected,
    ReconnectPolicy,
    RoomClient,
    ServerError,
    open_room_client,
)
from trio_rooms.codec import WireFormat

from ..chat_app import (
    Chat,
    ChatRoom,
    Echo,
    Leave,
    Renamed,
    SendChat,
    SetName,
    UserJoined,
    UserLeft,
    Whisper,
)

SERVER = (Chat, UserJoined, UserLeft, Renamed, Echo)
CLIENT = (SendChat, SetName, Whisper, Leave)
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=20)


def _url(port: int, room: str = "lobby", query: str = "") -> str:
    return f"ws://127.0.0.1:{port}/rooms/{room}/websocket" + (f"?{query}" if query else "")


@pytest.mark.parametrize("format", ["json", "msgpack"])
async def test_typed_round_trip(port: int, format: WireFormat) -> None:
    """Client messages go out and server messages come back typed, in both wire formats."""
    async with open_room_client(_url(port, query="name=ann"), SERVER, CLIENT, format=format) as c:
        assert_type(
            c,
            RoomClient[
                Chat | UserJoined | UserLeft | Renamed | Echo, SendChat | SetName | Whisper | Leave
            ],
        )
        assert c.session_id is not None
        assert await c.receive() == UserJoined(user_id=c.session_id, name="ann")
        c.send(Whisper(text="hi"))
        c.send(SetName(name="anna"))
        assert await c.receive() == Chat(user_id=c.session_id, name="ann", text="hi")
        assert await c.receive() == Renamed(user_id=c.session_id, name="anna")


async def test_without_resume_there_is_no_session_id(port: int) -> None:
    """resume=False speaks the plain wire: no $session frame, no session id."""
    async with open_room_client(_url(port), SERVER, CLIENT, resume=False) as client:
        assert client.session_id is None
        assert isinstance(await client.receive(), UserJoined)


async def test_iteration_ends_when_the_server_closes_normally(port: int) -> None:
    """A 1000 close from the server ends `async for` and is not retried."""
    async with open_room_client(_url(port), SERVER, CLIENT, reconnect=FAST) as client:
        client.send(Leave(code=1000))
        received = [message async for message in client]
        assert [type(m) for m in received] == [UserJoined]
        with pytest.raises(ConnectionClosedError) as closed:
            await client.receive()
        assert closed.value.code == 1000


async def test_a_policy_close_is_not_retried(port: int) -> None:
    """A 1008 close raises from receive with its code and reason; no reconnect happens."""
    async with open_room_client(_url(port), SERVER, CLIENT, reconnect=FAST) as client:
        assert isinstance(await client.receive(), UserJoined)
        client.send(Leave(code=1008))
        with pytest.raises(ConnectionClosedError) as closed:
            await client.receive()
        assert (closed.value.code, closed.value.reason) == (1008, "asked to leave")
        with pytest.raises(trio.EndOfChannel):
            await client.events.receive()
        with pytest.raises(ConnectionClosedError):
            client.send(Whisper(text="anyone?"))


async def test_going_away_reconnects_and_resumes(port: int, rooms: Rooms[ChatRoom]) -> None:
    """After a 1001 close the client reconnects with its token: same session, same data."""
    async with open_room_client(_url(port, query="name=ann"), SERVER, CLIENT, reconnect=FAST) as c:
        first = c.session_id
        assert first is not None
        assert isinstance(await c.receive(), UserJoined)
        c.send(SetName(name="anna"))
        assert isinstance(await c.receive(), Renamed)
        c.send(Leave(code=1001))
        event = await c.events.receive()
        assert event == Reconnected(
            code=1001,
            reason="asked to leave",
            attempts=1,
            resumed=True,
            session_id=first,
            previous_session_id=first,
            replayed=1,  # its own UserLeft, broadcast by on_close once it had left
        )
        assert c.session_id == first
        c.send(Whisper(text="still me?"))
        while not isinstance(message := await c.receive(), Chat):
            pass
        assert message == Chat(user_id=first, name="anna", text="still me?")


async def test_a_rejected_handshake_raises_with_the_status(port: int) -> None:
    """A handshake answered with an HTTP error raises ConnectionRejectedError, not retried."""
    with pytest.raises(ConnectionRejectedError) as rejected:
        async with open_room_client(_url(port, room="x" * 200), SERVER, CLIENT):
            pass
    assert rejected.value.status_code in (400, 404)


async def test_an_unknown_server_message_is_logged_and_skipped(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A server message outside the client's union is logged and skipped; the next one arrives."""
    async with open_room_client(_url(port), (Chat,), CLIENT) as client:
        client.send(Whisper(text="after"))
        assert isinstance(await client.receive(), Chat)
    [record] = [r for r in caplog.records if r.name == "trio_rooms.client"]
    assert record.levelname == "WARNING"
    assert "unknown message type 'userJoined'" in record.getMessage()


async def test_an_undecodable_frame_can_go_to_a_hook(port: int) -> None:
    """With on_invalid the DecodeError, frame included, goes to the hook and receive goes on."""
    invalid: list[DecodeError] = []
    async with open_room_client(_url(port), (Chat,), CLIENT, on_invalid=invalid.append) as c:
        c.send(Whisper(text="after"))
        assert isinstance(await c.receive(), Chat)
    [error] = invalid
    assert isinstance(error.frame, str)
    assert error.frame.startswith('{"type":"userJoined"')


@attrs.frozen
class Bogus(Message):
    """A client message the server does not know."""

    x: int


async def test_a_server_error_frame_raises_server_error(port: int) -> None:
    """The server's {"error": ...} answer to a bad frame raises ServerError with its text."""
    async with open_room_client(_url(port), SERVER, (Whisper, Bogus)) as client:
        assert isinstance(await client.receive(), UserJoined)
        client.send(Bogus(x=1))
        with pytest.raises(ServerError) as error:
            await client.receive()
        assert "bogus" in error.value.text
        client.send(Whisper(text="still here"))
        assert isinstance(await client.receive(), Chat)


async def test_aclose_writes_the_queue_then_closes_with_1000(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Messages queued before aclose are delivered, then the session closes normally."""
    async with open_room_client(_url(port, query="name=ann"), SERVER, CLIENT) as client:
        client.send(SendChat(text="bye"))
        await client.aclose()
        with pytest.raises(trio.ClosedResourceError):
            client.send(SendChat(text="too late"))
    room = await rooms.get("lobby")
    closed = await room.wait_closed(1)
    assert closed[0][0] == "ann"
