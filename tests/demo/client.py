"""A chat client over a real socket that speaks the demo's JSON, as the page does."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import trio_websocket

from ..sockets import open_client, read_close_code

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
        return await read_close_code(self.ws)

    async def session(self) -> Json:
        """Read the library's first frame of a resumable connection: its ``$session``."""
        frame = await self.receive()
        assert list(frame) == ["$session"], frame
        info: Json = frame["$session"]
        return info

    async def join(self) -> tuple[Json, Json]:
        """Read what a new session gets first: its ``members`` and ``history`` messages."""
        return await self.receive_type("members"), await self.receive_type("history")


@asynccontextmanager
async def connect(
    port: int, room: str, name: str | None = None, *, resume: str | None = None
) -> AsyncGenerator[ChatClient]:
    """A client of ``room``; the test owns the socket and closes it on exit.

    With ``resume`` (``""`` for a new session, or a token), the connection is
    resumable, as the page's are: its first frame is ``$session``.
    (trio-websocket's client does not close its socket when the server closes first.)
    """
    query = {key: value for key, value in (("name", name), ("resume", resume)) if value is not None}
    resource = f"/rooms/{room}/websocket"
    if query:
        resource += f"?{urlencode(query)}"
    async with open_client(port, resource) as (ws, _):
        yield ChatClient(ws)
