"""A peer that stops answering is dropped by the keepalive; a live one is kept."""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms, RoomsConfig

from ..chat_app import Chat, ChatRoom, UserJoined, UserLeft, Whisper
from ..peer import connect
from ..sockets import PING, open_raw

INTERVAL = TIMEOUT = 0.2


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(ping_interval=INTERVAL, ping_timeout=TIMEOUT)


@pytest.mark.embedded_only("hypercorn sends its own pings and drops silent peers itself")
async def test_a_peer_that_never_answers_its_ping_is_dropped(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Handshake, then silence: pinged after INTERVAL, dropped TIMEOUT later (1006).

    What is checked is the order (a ping, then the end, and the live client kept); how
    soon (INTERVAL + TIMEOUT and a tick) is a figure a loaded box stretches."""
    async with connect(port, "lobby", "name=live") as live:
        await live.receive_until(UserJoined)
        room = await rooms.get("lobby")
        with trio.fail_after(5):
            async with open_raw(port, "/rooms/lobby/websocket?name=dead") as dead:
                joined = await live.receive_until(UserJoined)
                assert isinstance(joined, UserJoined)
                # The dead peer reads nothing and answers nothing from here on.
                assert await room.wait_closed(1) == [("dead", 1006)]
                left = await live.receive_until(UserLeft)
                assert left == UserLeft(user_id=joined.user_id, code=1006)
                # What the server sent it: its join, at least one ping, then the end.
                frames = await dead.receive_until_eof()
        assert PING in [frame.opcode for frame in frames]
        # The live client was silent as long, answered the pings itself, and is kept.
        await live.send(Whisper(text="still here"))
        with trio.fail_after(5):
            reply = await live.receive()
        assert isinstance(reply, Chat)
        assert [s.data.name for s in room.sessions.values()] == ["live"]
