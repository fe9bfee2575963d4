"""TCP resets (SO_LINGER 0) at every point of a connection: none may reach the server."""

from __future__ import annotations

import socket
import struct

import pytest
import trio
import trio.testing

from trio_rooms import Rooms

from ..chat_app import Chat, ChatRoom, SendChat, UserJoined, UserLeft, Whisper
from ..peer import Peer, connect
from ..servers import Transport
from ..sockets import (
    CLOSE,
    TEXT,
    RawClient,
    client_frame,
    close_payload,
    connect_socket,
    handshake_request,
    open_raw,
    raw_handshake,
)
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


def reset_at_once(port: int) -> None:
    """Connect and reset with no await between: the server accepts an already-reset socket."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _reset_after(port: int, point: str) -> None:
    """Open a connection, take it to ``point`` of its life, and reset it there."""
    if point == "before the accept":
        reset_at_once(port)
        return
    client = RawClient(await connect_socket(port))
    try:
        if point == "before the request":
            await trio.testing.wait_all_tasks_blocked()  # the server is reading
        elif point == "before the 101":
            await client.send(handshake_request("/rooms/lobby/websocket?name=reset"))
        elif point == "before reading a refusal":
            await client.send(handshake_request("/rooms/lobby/elsewhere"))
            await trio.testing.wait_all_tasks_blocked()  # the 404 is on its way
        else:
            client = await raw_handshake(client.stream, "/rooms/lobby/websocket?name=reset")
            if point == "after the first frame":
                await client.send(client_frame(TEXT, b'{"type": "whisper", "text": "hi"}'))
            elif point == "in the close handshake":
                await client.send(client_frame(CLOSE, close_payload(1000)))
    finally:
        client.reset()


RESET_POINTS = [
    "before the accept",
    "before the request",
    "before the 101",
    "before reading a refusal",
    "after the 101",
    "after the first frame",
    "in the close handshake",
]


async def _assert_served(canary: Peer, text: str) -> None:
    await canary.send(Whisper(text=text))
    heard = await canary.receive_until(Chat)
    assert isinstance(heard, Chat)
    assert heard.text == text


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.exc_info]


@pytest.mark.parametrize("point", RESET_POINTS)
async def test_a_reset_at_any_point_of_a_connection_leaves_the_server_serving(
    port: int, rooms: Rooms[ChatRoom], caplog: pytest.LogCaptureFixture, point: str
) -> None:
    """An RST at any point of a connection ends only it, and logs no traceback."""
    async with connect(port, "lobby", "name=canary") as canary:
        await canary.receive_until(UserJoined)
        with trio.fail_after(10):
            for attempt in range(5):
                await _reset_after(port, point)
                await _assert_served(canary, f"still here {attempt}")
            await trio.testing.wait_all_tasks_blocked()
    assert _tracebacks(caplog) == []
    room = await rooms.get("lobby")
    with trio.fail_after(5):
        await room.wait_closed(len(room.closed) + len(room.sessions))
    assert rooms.statistics().connections <= 1


async def test_a_storm_of_resets_never_costs_a_chatting_client_a_reply(
    port: int, rooms: Rooms[ChatRoom], caplog: pytest.LogCaptureFixture
) -> None:
    """Hundreds of resets at every point, 20 at a time: the canary gets every one of its replies."""
    storm_size, concurrency = 350, 20
    replies = 0
    async with connect(port, "lobby", "name=canary") as canary:
        await canary.receive_until(UserJoined)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                limit = trio.Semaphore(concurrency)

                async def one(point: str) -> None:
                    async with limit:
                        await _reset_after(port, point)

                for attempt in range(storm_size):
                    nursery.start_soon(one, RESET_POINTS[attempt % len(RESET_POINTS)])
                    if attempt % 10 == 0:
                        await _assert_served(canary, f"reply {attempt}")
                        replies += 1
            await _assert_served(canary, "after the storm")
    assert replies == storm_size // 10
    assert _tracebacks(caplog) == []
