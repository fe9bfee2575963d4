"""The byte stream under a client's WebSocket: opening it, and noticing when the peer ends it."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import final

import trio

from ._frames import Endpoint

__all__ = ["WatchedStream", "open_stream"]


async def open_stream(endpoint: Endpoint) -> trio.abc.Stream:
    """A TCP connection to ``endpoint``, with TLS for ``wss``.

    Raises:
        OSError: The name did not resolve or the connection was refused.
    """
    if endpoint.secure:
        context = ssl.create_default_context()
        return await trio.open_ssl_over_tcp_stream(
            endpoint.host, endpoint.port, ssl_context=context, https_compatible=True
        )
    return await trio.open_tcp_stream(endpoint.host, endpoint.port)


@final
class WatchedStream(trio.abc.Stream):
    """``stream``, calling ``on_end`` the first time it ends: EOF, or a broken send or receive.

    trio-websocket's client waits for the server's handshake answer with no deadline
    and does not notice when the connection ends first: its reader just stops. Reading
    through this stream is how the client learns of that at once.
    """

    def __init__(self, stream: trio.abc.Stream, on_end: Callable[[], None]) -> None:
        self._stream = stream
        self._on_end = on_end
        self.ended = False
        #: What the stream ended with: a reset or other failure; ``None`` for an EOF.
        self.error: trio.BrokenResourceError | None = None

    def _end(self, error: trio.BrokenResourceError | None) -> None:
        if not self.ended:
            self.ended, self.error = True, error
            self._on_end()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            self._end(exc)
            raise
        if not data:
            self._end(None)
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stream.send_all(data)
        except trio.BrokenResourceError as exc:
            self._end(exc)
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()
