"""A peer that stops answering is dropped by the keepalive; a live one is kept."""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms, RoomsConfig

from ..chat_app import Chat, ChatRoom, UserJoined, UserLeft, Whisper
from ..peer import connect
from ..sockets import PING, open_raw

INTERVAL = TIMEOUT = 0.2
TICK = min(INTERVAL, TIMEOUT) / 4  # how often the keepalive task looks (see _keepalive.py)
SLACK = 0.5  # scheduling on a busy 2-core CI machine


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(ping_interval=INTERVAL, ping_timeout=TIMEOUT)


@pytest.mark.embedded_only("hypercorn sends its own pings and drops silent peers itself")
async def test_a_peer_that_never_answers_is_dropped_within_interval_plus_timeout(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Handshake, then silence: pinged after INTERVAL, dropped TIMEOUT later (1006)."""
    async with connect(port, "lobby", "name=live") as live:
        await live.receive_until(UserJoined)
        room = await rooms.get("lobby")
        with trio.fail_after(5):
            async with open_raw(port, "/rooms/lobby/websocket?name=dead") as dead:
                silent_from = trio.current_time()  # the server heard the handshake last
                joined = await live.receive_until(UserJoined)
                assert isinstance(joined, UserJoined)
                # The dead peer reads nothing and answers nothing from here on.
                assert await room.wait_closed(1) == [("dead", 1006)]
                dropped_after = trio.current_time() - silent_from
                left = await live.receive_until(UserLeft)
                assert left == UserLeft(user_id=joined.user_id, code=1006)
                # What the server sent it: its join, at least one ping, then the end.
                frames = await dead.receive_until_eof()
        assert PING in [frame.opcode for frame in frames]
        assert dropped_after < INTERVAL + TIMEOUT + TICK + SLACK
        # The live client was silent as long, answered the pings itself, and is kept.
        await live.send(Whisper(text="still here"))
        with trio.fail_after(5):
            reply = await live.receive()
        assert isinstance(reply, Chat)
        assert [s.data.name for s in room.sessions.values()] == ["live"]
