"""A trio-websocket client whose TCP socket the test owns.

trio-websocket's client does not close its socket when the server closes first, which
warnings-as-errors turns into a failure; every test client opens the stream itself
through here and closes it on exit.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import trio
import trio_websocket


@asynccontextmanager
async def open_client(
    port: int, resource: str
) -> AsyncGenerator[tuple[trio_websocket.WebSocketConnection, trio.SocketStream]]:
    """A WebSocket client of ``ws://127.0.0.1:{port}{resource}`` and its socket."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(nursery, stream, "127.0.0.1", resource)
            try:
                yield ws, stream
            finally:
                await ws.aclose()
    finally:
        await stream.aclose()


async def read_close_code(ws: trio_websocket.WebSocketConnection) -> int:
    """Read until the server closes; return its close code (1006 without a close frame)."""
    try:
        while True:
            await ws.get_message()
    except trio_websocket.ConnectionClosed as exc:
        return exc.reason.code if exc.reason is not None else 1006
