"""Binary frames on a JSON session, and text frames that are not UTF-8."""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms

from ..chat_app import Chat, ChatRoom, UserJoined, UserLeft
from ..peer import Peer, connect
from ..servers import Transport
from ..sockets import BINARY, CLOSE, CONTINUATION, TEXT, RawClient, client_frame, open_raw

BINARY_ERROR = '{"error":"binary frames are not accepted by this session"}'

#: Binary messages, each as the frames that carry it.
BINARY_MESSAGES: dict[str, list[bytes]] = {
    "empty": [client_frame(BINARY)],
    "one byte": [client_frame(BINARY, b"\x00")],
    "64 KiB": [client_frame(BINARY, bytes(range(256)) * 256)],
    "a JSON message as bytes": [client_frame(BINARY, b'{"type": "message", "text": "hi"}')],
    "invalid UTF-8": [client_frame(BINARY, b"\xff\xfe\xc3\x28")],
    "fragmented": [
        client_frame(BINARY, b"one", fin=False),
        client_frame(CONTINUATION, b"two", fin=False),
        client_frame(CONTINUATION, b"three"),
    ],
}


async def test_binary_frames_get_an_error_frame_and_keep_the_connection(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Whatever the binary message, default on_bytes answers an error; the session goes on."""
    async with (
        connect(port, "lobby", "name=observer") as observer,
        open_raw(port, "/rooms/lobby/websocket?name=raw") as client,
    ):
        await _joined(observer, "raw")
        assert '"userJoined"' in await client.receive_text()
        room = await rooms.get("lobby")
        (session,) = [s for s in room.sessions.values() if s.data.name == "raw"]
        with trio.fail_after(10):
            for frames in BINARY_MESSAGES.values():
                for frame in frames:
                    await client.send(frame)
            for name in BINARY_MESSAGES:
                assert await _next_text(client) == BINARY_ERROR, name
            # Still open and handled: a whisper comes back, and is the only message.
            await client.send_text('{"type": "whisper", "text": "after"}')
            reply = await _next_text(client)
            assert '"text":"after"' in reply
            await client.send_text('{"type": "message", "text": "marker"}')
            heard = await observer.receive()
        assert isinstance(heard, Chat)
        assert heard.text == "marker"
        assert session.data.messages == 2
        assert session.id in room.sessions


#: Text messages that are not UTF-8, each as the frames that carry it.
INVALID_UTF8: dict[str, list[bytes]] = {
    "overlong": [client_frame(TEXT, b"\xc0\xaf")],
    "surrogate": [client_frame(TEXT, b"\xed\xa0\x80")],
    "beyond U+10FFFF": [client_frame(TEXT, b"\xf4\x90\x80\x80")],
    "lone continuation byte": [client_frame(TEXT, b"ok\x80")],
    "0xff": [client_frame(TEXT, b"\xff")],
    "truncated at the end": [client_frame(TEXT, b"hello\xe2\x82")],
    "split across fragments": [
        client_frame(TEXT, "κόσμε".encode() + b"\xce", fin=False),
        client_frame(CONTINUATION, b"\x28"),
    ],
    "after 64 KiB of valid text": [
        client_frame(TEXT, b"v" * 65536, fin=False),
        client_frame(CONTINUATION, b"\xed\xbf\xbf"),
    ],
    "in a close reason": [client_frame(CLOSE, b"\x03\xe8" + b"bye \xff")],
}


@pytest.mark.parametrize("frames", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
async def test_invalid_utf8_closes_with_1007_and_the_others_see_the_leave(
    port: int, rooms: Rooms[ChatRoom], transport: Transport, frames: list[bytes]
) -> None:
    """The server closes with 1007 (hypercorn drops the connection); the room hears the leave."""
    async with connect(port, "lobby", "name=observer") as observer:
        await observer.receive_until(UserJoined)
        with trio.fail_after(5):
            async with open_raw(port, "/rooms/lobby/websocket?name=raw") as client:
                joined = await _joined(observer, "raw")
                for frame in frames:
                    await client.send(frame)
                code = await client.close_code()
                if code is not None:
                    await client.send(client_frame(CLOSE, code.to_bytes(2, "big")))
                    assert await client.receive_until_eof() == []
            # Hypercorn drops a connection with invalid UTF-8 without a close frame.
            assert code == (1007 if transport == "embedded" else None)
            left = await observer.receive_until(UserLeft)
        assert left == UserLeft(user_id=joined.user_id, code=code or 1006)
        assert rooms.statistics().sessions == 1


async def _joined(observer: Peer, name: str) -> UserJoined:
    while True:
        message = await observer.receive()
        if isinstance(message, UserJoined) and message.name == name:
            return message


async def _next_text(client: RawClient) -> str:
    return await client.receive_text()
