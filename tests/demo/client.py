"""A chat client over a real socket that speaks the demo's JSON, as the page does."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import trio
import trio_websocket

Json = dict[str, Any]


class ChatClient:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, message: Json) -> None:
        await self.ws.send_message(json.dumps(message))

    async def receive(self) -> Json:
        message: Json = json.loads(await self.ws.get_message())
        return message

    async def receive_type(self, kind: str) -> Json:
        """The next message; it must be of type ``kind``."""
        message = await self.receive()
        assert message.get("type") == kind, message
        return message

    async def close_code(self) -> int:
        """Read until the server closes; return its close code."""
        try:
            while True:
                await self.ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            return exc.reason.code if exc.reason is not None else 1006

    async def join(self) -> tuple[Json, Json]:
        """Read what a new session gets first: its ``members`` and ``history`` messages."""
        return await self.receive_type("members"), await self.receive_type("history")


@asynccontextmanager
async def connect(port: int, room: str, name: str | None = None) -> AsyncGenerator[ChatClient]:
    """A client of ``room``; the test owns the socket and closes it on exit.

    (trio-websocket's client does not close its socket when the server closes first.)
    """
    resource = f"/rooms/{room}/websocket"
    if name is not None:
        resource += f"?name={quote(name)}"
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(nursery, stream, "127.0.0.1", resource)
            try:
                yield ChatClient(ws)
            finally:
                await ws.aclose()
    finally:
        await stream.aclose()
