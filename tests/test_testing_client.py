"""``trio_rooms.testing.open_test_client``: the production client over memory streams."""

from __future__ import annotations

from typing import assert_type

import trio

import trio_rooms
from trio_rooms import Rooms, testing
from trio_rooms.client import Reconnected

from .chat_app import (
    Chat,
    ChatRoom,
    ClientMsg,
    Leave,
    Renamed,
    SendChat,
    ServerMsg,
    SetName,
    UserJoined,
    UserLeft,
)


async def test_the_test_client_is_the_room_client_typed_by_the_session(
    rooms: Rooms[ChatRoom],
) -> None:
    """It is a RoomClient of the session's messages, and gets its session frame."""
    async with testing.open_test_client(rooms, "lobby", query="name=ann") as ann:
        assert_type(ann, trio_rooms.RoomClient[ServerMsg, ClientMsg])
        assert ann.session_id is not None
        assert await ann.receive() == UserJoined(user_id=ann.session_id, name="ann")
        ann.send(SendChat(text="hi"))
        assert await ann.receive() == Chat(user_id=ann.session_id, name="ann", text="hi")
        room = await rooms.get("lobby")
        assert list(room.sessions) == [ann.session_id]
    with trio.fail_after(5):
        await rooms.wait_statistics(lambda stats: stats.sessions == 0)
    assert room.closed == [("ann", 1000)]


async def test_a_restart_close_reconnects_and_resumes_the_same_session(
    rooms: Rooms[ChatRoom],
) -> None:
    """After the server closes with 1012 the client comes back as the same session, data kept."""
    async with testing.open_test_client(rooms, "lobby", query="name=ann") as ann:
        first = ann.session_id
        assert first is not None
        await ann.receive()  # joined
        ann.send(SetName(name="anna"))
        assert await ann.receive() == Renamed(user_id=first, name="anna")
        ann.send(Leave(code=1012))  # the session closes itself: "service restart"
        with trio.fail_after(5):
            event = await ann.events.receive()
        assert isinstance(event, Reconnected)
        assert (event.code, event.resumed, event.session_id) == (1012, True, first)
        # Missed while away, so replayed: its own UserLeft, which on_close broadcast.
        assert await ann.receive() == UserLeft(user_id=first, code=1012)
        assert await ann.receive() == UserJoined(user_id=first, name="anna")


async def test_msgpack_and_a_plain_session_work_too(rooms: Rooms[ChatRoom]) -> None:
    """The wire format and resume=False are the client's own options."""
    async with testing.open_test_client(
        rooms, "lobby", format="msgpack", resume=False, query="name=bob"
    ) as bob:
        assert bob.session_id is None
        joined = await bob.receive()
        assert isinstance(joined, UserJoined)
        room = await rooms.get("lobby")
        assert room.sessions[joined.user_id].format == "msgpack"
