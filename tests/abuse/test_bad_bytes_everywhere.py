"""Handshake bytes a parser may choke on: no request may stop the server, on either transport.

Hypercorn 0.18 fails inside its own handshake code on a non-ASCII byte in some WebSocket
headers: it neither answers nor closes, and the socket is held until its
``keep_alive_timeout`` (``hypercorn_config`` sets it to ``handshake_timeout``).
"""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms, RoomsConfig

from ..chat_app import Chat, ChatRoom, SendChat, UserJoined
from ..peer import connect
from ..sockets import connect_socket, handshake_request

#: Requests that reached a parser's error path with an exception it did not expect.
POISON: dict[str, bytes] = {
    "non-ascii Connection": handshake_request("/rooms/lobby/websocket").replace(
        b"Connection: Upgrade", b"Connection: Upgrade\xff"
    ),
    "non-ascii Sec-WebSocket-Protocol": handshake_request(
        "/rooms/lobby/websocket", extra="Sec-WebSocket-Protocol: chat\xe9\r\n"
    ),
    "non-ascii Sec-WebSocket-Extensions": handshake_request(
        "/rooms/lobby/websocket", extra="Sec-WebSocket-Extensions: permessage-\xe9\r\n"
    ),
    "a TLS client hello": bytes.fromhex("16030100a5010000a10303") + b"\x00" * 64,
    "a request line of garbage": b"\x16\x03\x01 \xff\xfe HTTP/1.1\r\n\r\n",
}


HANDSHAKE_TIMEOUT = 1.0


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(handshake_timeout=HANDSHAKE_TIMEOUT)


@pytest.mark.parametrize("request_bytes", list(POISON.values()), ids=list(POISON))
async def test_no_request_stops_the_server(
    port: int, rooms: Rooms[ChatRoom], request_bytes: bytes
) -> None:
    """Each poison request ends its own connection in time; a chatting client is still served."""
    async with connect(port, "lobby", "name=canary") as canary:
        joined = await canary.receive_until(UserJoined)
        assert isinstance(joined, UserJoined)
        for _ in range(3):
            stream = await connect_socket(port)
            async with stream:
                await stream.send_all(request_bytes)
                with trio.fail_after(HANDSHAKE_TIMEOUT + 2):
                    while await _receive_or_eof(stream):
                        pass
            await canary.send(SendChat(text="still here"))
            assert await canary.receive_until(Chat) == Chat(
                user_id=joined.user_id, name="canary", text="still here"
            )
    with trio.fail_after(5):
        await rooms.wait_statistics(lambda stats: stats.connections == 0)


async def _receive_or_eof(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except trio.BrokenResourceError:
        return b""
