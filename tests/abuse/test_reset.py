"""TCP resets (SO_LINGER 0) in the middle of a frame or of the handshake."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_rooms import Rooms

from ..chat_app import Chat, ChatRoom, SendChat, UserJoined, UserLeft
from ..peer import Peer, connect
from ..servers import Transport
from ..sockets import TEXT, RawClient, client_frame, connect_socket, handshake_request, open_raw
from .measure import open_fds, task_count

#: What the client has sent when its connection is reset, after joining the room.
MID_SESSION: dict[str, bytes] = {
    "mid-payload": client_frame(TEXT, b'{"type": "message", "text": "cut')[:-5],
    "mid-header": client_frame(TEXT, b"x" * 70_000)[:3],
    "mid-fragmented-message": client_frame(TEXT, b'{"type": ', fin=False),
    "after a message, while the server writes": client_frame(
        TEXT, b'{"type": "message", "text": "echo me"}'
    ),
}


@pytest.mark.parametrize("sent", list(MID_SESSION.values()), ids=list(MID_SESSION))
async def test_a_reset_mid_frame_ends_the_session_and_the_others_see_the_leave(
    port: int, rooms: Rooms[ChatRoom], sent: bytes
) -> None:
    """The reset session ends with 1006, the room hears it leave, nothing is left behind."""
    async with connect(port, "lobby", "name=observer") as observer:
        await observer.receive_until(UserJoined)
        with trio.fail_after(5):
            async with open_raw(port, "/rooms/lobby/websocket?name=reset") as client:
                joined = await _joined(observer, "reset")
                await client.send(sent)
                client.reset()
            left = await observer.receive_until(UserLeft)
            assert left == UserLeft(user_id=joined.user_id, code=1006)
            room = await rooms.get("lobby")
            assert await room.wait_closed(1) == [("reset", 1006)]
        assert [s.data.name for s in room.sessions.values()] == ["observer"]
        assert rooms.statistics().sessions == 1
        # The room still works for the one left.
        await observer.send(SendChat(text="alone"))
        heard = await observer.receive()
        assert isinstance(heard, Chat)
        assert heard.text == "alone"


@pytest.mark.parametrize("cut", [1, 20, 60, -4, -1], ids=lambda cut: f"cut at {cut}")
async def test_a_reset_mid_handshake_leaves_nothing_behind(
    port: int, rooms: Rooms[ChatRoom], transport: Transport, cut: int
) -> None:
    """Part of a handshake, then RST: no room, no session, no task or fd left over."""
    async with connect(port, "lobby", "name=observer") as observer:
        await observer.receive_until(UserJoined)
        await trio.testing.wait_all_tasks_blocked()
        tasks, fds = task_count(), open_fds()
        with trio.fail_after(5):
            stream = await connect_socket(port)
            client = RawClient(stream)
            await client.send(handshake_request("/rooms/elsewhere/websocket")[:cut])
            await trio.testing.wait_all_tasks_blocked()  # the server is waiting for the rest
            client.reset()
            await trio.testing.wait_all_tasks_blocked()
        if transport == "embedded":
            # Hypercorn keeps a reset connection's tasks and socket until its
            # keep_alive_timeout (5 s): its own, not ours to check here.
            assert (task_count(), open_fds()) == (tasks, fds)
        statistics = rooms.statistics()
        assert (statistics.rooms, statistics.sessions) == (1, 1)
        # The observer heard nothing of it.
        await observer.send(SendChat(text="marker"))
        heard = await observer.receive()
        assert isinstance(heard, Chat)
        assert heard.text == "marker"


async def _joined(observer: Peer, name: str) -> UserJoined:
    while True:
        message = await observer.receive()
        if isinstance(message, UserJoined) and message.name == name:
            return message
