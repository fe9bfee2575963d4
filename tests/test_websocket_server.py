"""The chat flow and the session lifecycle over real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio_websocket
from wsproto.events import TextMessage

from trio_rooms import Rooms, RoomsConfig
from trio_rooms._core.rooms import registry_of

from .chat_app import (
    Boom,
    Chat,
    ChatRoom,
    Echo,
    Leave,
    Renamed,
    SendChat,
    SetName,
    Shout,
    Slow,
    UserJoined,
    UserLeft,
    Whisper,
)
from .peer import connect
from .servers import Transport, client_close_code


async def test_broadcast_reaches_every_session_of_the_room(port: int) -> None:
    """A chat message is broadcast to both clients, the sender included."""
    async with connect(port, "lobby", "name=alice") as alice:
        joined = await alice.receive()
        assert isinstance(joined, UserJoined)
        assert joined.name == "alice"
        async with connect(port, "lobby", "name=bob") as bob:
            assert await bob.receive_until(UserJoined) == await alice.receive_until(UserJoined)
            await bob.send(SendChat(text="hi"))
            to_bob = await bob.receive()
            to_alice = await alice.receive()
            assert to_bob == to_alice
            assert isinstance(to_bob, Chat)
            assert (to_bob.name, to_bob.text) == ("bob", "hi")


async def test_exclude_self_and_leave_reaches_only_the_others(
    port: int, rooms: Rooms[ChatRoom], transport: Transport
) -> None:
    """exclude_self skips the sender; the leave broadcast from on_close reaches only the others."""
    left_code = client_close_code(transport, 1000)
    async with connect(port, "lobby", "name=alice") as alice:
        await alice.receive_until(UserJoined)
        async with connect(port, "lobby", "name=bob") as bob:
            await bob.receive_until(UserJoined)
            await alice.receive_until(UserJoined)
            await bob.send(Shout(text="to the others"))
            await bob.send(Whisper(text="only me"))
            assert await alice.receive() == Chat(
                user_id=_id(rooms, "bob"), name="bob", text="to the others"
            )
            # bob's next frame is his whisper: the shout was not sent back to him.
            assert await bob.receive() == Chat(
                user_id=_id(rooms, "bob"), name="bob", text="only me"
            )
            bob_id = _id(rooms, "bob")
        left = await alice.receive()
        assert left == UserLeft(user_id=bob_id, code=left_code)
    room = await rooms.get("lobby")
    with trio.fail_after(5):
        assert await room.wait_closed(2) == [("bob", left_code), ("alice", left_code)]


def _id(rooms: Rooms[ChatRoom], name: str) -> str:
    room = registry_of(rooms)._slots["lobby"].room  # pyright: ignore[reportPrivateUsage] - a live room, no await
    assert room is not None
    (session,) = [s for s in room.sessions.values() if s.data.name == name]
    return session.id


async def test_rooms_are_isolated(port: int) -> None:
    """A broadcast in one room never reaches another room."""
    async with connect(port, "red") as red, connect(port, "blue") as blue:
        await red.receive_until(UserJoined)
        await blue.receive_until(UserJoined)
        await red.send(SendChat(text="red only"))
        await blue.send(SendChat(text="blue only"))
        red_chat = await red.receive()
        blue_chat = await blue.receive()
        assert isinstance(red_chat, Chat)
        assert isinstance(blue_chat, Chat)
        assert (red_chat.text, blue_chat.text) == ("red only", "blue only")


async def test_messages_of_one_session_are_handled_in_order(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Messages queued behind a waiting handler are handled one at a time, in order."""
    async with connect(port, "ordered") as client:
        await client.receive_until(UserJoined)
        for seq in range(50):
            await client.send(Slow(seq=seq))
        room = await rooms.get("ordered")
        room.slow_release.set()
        assert [await client.receive() for _ in range(50)] == [Echo(seq=seq) for seq in range(50)]


async def test_a_handler_exception_keeps_the_connection_and_the_room(
    port: int, rooms: Rooms[ChatRoom], caplog: pytest.LogCaptureFixture
) -> None:
    """on_message raising goes to on_error and is logged; the session keeps working."""
    async with connect(port, "lobby", "name=alice") as alice:
        await alice.receive_until(UserJoined)
        await alice.send(Boom())
        await alice.send(Whisper(text="still here"))
        reply = await alice.receive()
        assert isinstance(reply, Chat)
        assert reply.text == "still here"
    room = await rooms.get("lobby")
    assert [str(error) for error in room.errors] == ["boom"]
    assert "unhandled error in session" in caplog.text
    assert rooms.statistics().errors == 1


async def test_an_invalid_frame_gets_an_error_frame_and_the_session_goes_on(port: int) -> None:
    """An undecodable frame is answered with {"error": ...}; the next valid message works."""
    async with connect(port, "lobby") as client:
        await client.receive_until(UserJoined)
        await client.ws.send_message('{"type": "message", "text": 5}')
        assert await client.ws.get_message() == '{"error":"expected str @ $.text"}'
        await client.ws.send_message("not json")
        error = await client.receive_text()
        assert error.startswith('{"error":"invalid JSON')
        await client.send(Whisper(text="fine"))
        reply = await client.receive()
        assert isinstance(reply, Chat)
        assert reply.text == "fine"


async def test_a_binary_frame_on_a_json_session_goes_to_on_bytes(port: int) -> None:
    """By default on_bytes treats a binary frame as invalid input and keeps the connection."""
    async with connect(port, "lobby") as client:
        await client.receive_until(UserJoined)
        await client.ws.send_message(b"\x00\x01")
        assert (
            await client.ws.get_message()
            == '{"error":"binary frames are not accepted by this session"}'
        )
        await client.send(Whisper(text="after bytes"))
        assert isinstance(await client.receive(), Chat)


@pytest.mark.parametrize("config", [RoomsConfig(max_message_size=1024)])
async def test_an_oversized_message_closes_with_1009(port: int) -> None:
    """A message over max_message_size closes the session with 1009."""
    async with connect(port, "lobby") as client:
        await client.receive_until(UserJoined)
        await client.send(SendChat(text="x" * 2000))
        assert await client.close_code() == 1009


@pytest.mark.parametrize("config", [RoomsConfig(max_message_size=1024)])
async def test_an_oversized_fragmented_message_closes_with_1009(port: int) -> None:
    """The limit applies to the whole message, however it is fragmented."""
    async with connect(port, "lobby") as client:
        await client.receive_until(UserJoined)
        for _ in range(3):  # fragments under the limit each, over it together
            fragment = TextMessage(data="y" * 500, message_finished=False)
            await client.stream.send_all(client.ws._wsproto.send(fragment))  # pyright: ignore[reportPrivateUsage]
        assert await client.close_code() == 1009


@pytest.mark.embedded_only("hypercorn drops a connection with invalid UTF-8 without a close frame")
async def test_invalid_utf8_closes_with_1007(port: int) -> None:
    """A text frame that is not UTF-8 closes the session with 1007."""
    async with connect(port, "lobby") as client:
        await client.receive_until(UserJoined)
        masked_header = bytes([0x81, 0x80 | 2]) + b"\x00\x00\x00\x00"  # zero mask: payload as is
        await client.stream.send_all(masked_header + b"\xc3\x28")
        assert await client.close_code() == 1007


async def test_session_close_sends_the_code_and_runs_on_close(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Session.close() flushes, sends its code, and on_close sees that code."""
    async with connect(port, "lobby", "name=carol") as client:
        joined = await client.receive()
        assert isinstance(joined, UserJoined)
        await client.send(Whisper(text="before"))
        await client.send(Leave(code=4000))
        assert await client.receive() == Chat(user_id=joined.user_id, name="carol", text="before")
        assert await client.close_code() == 4000
    room = await rooms.get("lobby")
    with trio.fail_after(5):
        assert await room.wait_closed(1) == [("carol", 4000)]


async def test_create_data_failure_closes_with_1011(port: int, rooms: Rooms[ChatRoom]) -> None:
    """A create_data exception closes with 1011; the session is never admitted."""
    async with connect(port, "lobby", "name=fail") as client:
        assert await client.close_code() == 1011
    room = await rooms.get("lobby")
    assert room.closed == []
    assert not room.sessions


async def test_create_data_failure_with_frames_in_flight_still_closes_with_1011(port: int) -> None:
    """Frames that arrive while setup fails are dropped; the close frame is still 1011."""
    async with connect(port, "lobby", "name=fail") as client:
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            for _ in range(50):
                await client.send(Whisper(text="early"))
        assert await client.close_code() == 1011


async def test_rename_is_seen_by_everyone(port: int) -> None:
    """Session data changes in a handler and the change is broadcast."""
    async with connect(port, "lobby", "name=a") as a, connect(port, "lobby", "name=b") as b:
        await a.receive_until(UserJoined)
        await b.receive_until(UserJoined)
        await a.send(SetName(name="alice"))
        renamed = await b.receive_until(Renamed)
        assert isinstance(renamed, Renamed)
        assert renamed.name == "alice"
        await a.send(SendChat(text="hello"))
        chat = await b.receive_until(Chat)
        assert isinstance(chat, Chat)
        assert chat.name == "alice"
