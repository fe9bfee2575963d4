"""A typed peer over a real socket: trio-websocket plus the codec, as a user's client would be."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import trio
import trio_websocket

from trio_rooms.codec import JsonCodec

from .chat_app import (
    Boom,
    Chat,
    ClientMsg,
    Echo,
    Leave,
    Renamed,
    SendChat,
    ServerMsg,
    SetName,
    Shout,
    Slow,
    UserJoined,
    UserLeft,
    Whisper,
)
from .sockets import open_client, read_close_code

client_codec = JsonCodec(SendChat, SetName, Whisper, Shout, Boom, Slow, Leave)
server_codec = JsonCodec(Chat, UserJoined, UserLeft, Renamed, Echo)


class Peer:
    def __init__(self, ws: trio_websocket.WebSocketConnection, stream: trio.SocketStream) -> None:
        self.ws = ws
        self.stream = stream

    async def send(self, message: ClientMsg) -> None:
        await self.ws.send_message(client_codec.encode(message).decode())

    async def receive(self) -> ServerMsg:
        return server_codec.decode(await self.ws.get_message())

    async def receive_until(self, kind: type[ServerMsg]) -> ServerMsg:
        """Skip messages of other kinds (presence noise) until one of ``kind``."""
        while True:
            message = await self.receive()
            if isinstance(message, kind):
                return message

    async def receive_text(self) -> str:
        frame = await self.ws.get_message()
        assert isinstance(frame, str)
        return frame

    async def close_code(self) -> int:
        """Read until the server closes; return its close code."""
        return await read_close_code(self.ws)


@asynccontextmanager
async def connect(port: int, room: str, query: str = "") -> AsyncGenerator[Peer]:
    """A client of ``room``; the test owns the socket and closes it on exit."""
    resource = f"/rooms/{room}/websocket" + (f"?{query}" if query else "")
    async with open_client(port, resource) as (ws, stream):
        yield Peer(ws, stream)
