"""Red team: a ping flood from a client that never reads its pongs.

Pings are control frames, under no message bound or rate limit; each asks for a pong.
A client that sends them as fast as it can and reads nothing must not make the server
hold a pong for each (RFC 6455 5.5.3 lets it answer only the latest one not yet sent).
"""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms
from trio_rooms._core.session import runner_of

from .chat_app import Chat, ChatRoom, UserJoined
from .peer import connect
from .sockets import PING, PONG, TEXT, ServerFrame, client_frame, open_raw

PINGS = 20_000


@pytest.mark.embedded_only("hypercorn answers pings itself")
async def test_a_ping_flood_unread_holds_one_pong_not_one_per_ping(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """20,000 pings of 125 bytes to a socket that reads nothing: the session's queue holds
    a pong or two, not 20,000 (2.5 MB past every bound); the client, once it reads,
    gets the pong of its latest ping, then what the room sent after."""
    async with connect(port, "lobby", "name=watcher") as watcher:
        await watcher.receive_until(UserJoined)
        with trio.fail_after(30):
            async with open_raw(port, "/rooms/lobby/websocket?name=flood", rcvbuf=4096) as flood:
                joined = await watcher.receive_until(UserJoined)
                assert isinstance(joined, UserJoined)
                room = await rooms.get("lobby")
                outbound = runner_of(room.sessions[joined.user_id]).outbound
                ping = client_frame(PING, b"p" * 125)
                most = 0
                for _ in range(PINGS // 500):
                    await flood.send(ping * 500)
                    most = max(most, len(outbound))
                # A message after the flood: once the watcher hears it, every ping before
                # it was read and answered (or not) by the server.
                await flood.send(client_frame(TEXT, b'{"type": "message", "text": "end"}'))
                heard = await watcher.receive_until(Chat)
                assert isinstance(heard, Chat)
                assert heard.text == "end"
                most = max(most, len(outbound))
                assert most <= 2, most
                # The client, reading at last, gets a pong for the latest ping.
                frames: list[ServerFrame] = []
                while (frame := await flood.receive_frame()) is not None:
                    frames.append(frame)
                    if frame.opcode == TEXT and b"end" in frame.payload:
                        break
                pongs = [frame for frame in frames if frame.opcode == PONG]
                assert pongs
                assert pongs[-1].payload == b"p" * 125
