"""The ASGI websocket scope: its events adapted to the core's `Connection` port.

Hypercorn does the WebSocket protocol itself (pings, its own message size limit, the
close handshake), so `_AsgiConnection` only turns ``websocket.receive`` and
``websocket.disconnect`` into messages and `ConnectionEnded`, and frames into
``websocket.send`` and ``websocket.close``. What a session means is the core's
`serve_session`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, final

import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    WebsocketScope,
)

from .._core.connection import ConnectionEnded
from .._core.outbound import BINARY, TEXT, Frame, OutboundQueue
from .._core.rooms import Rooms
from .._core.serving import WebSocketHead, counted, serve_session
from ._asgi_scope import request_headers, request_target

__all__ = ["serve_websocket_scope"]


async def serve_websocket_scope(
    rooms: Rooms[Any] | None,
    scope: WebsocketScope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
) -> None:
    """Run the session ``scope`` asks for until it ends; refused while ``rooms`` is None.

    Counts against the connection caps from the ``websocket.connect`` event.
    """
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if rooms is None:
        await _refuse(scope, send, 503, "Service Unavailable: the rooms are not running", 1011)
        return
    with counted(rooms, scope["client"]):
        await _serve_session(rooms, scope, receive, send)


async def _serve_session(
    rooms: Rooms[Any],
    scope: WebsocketScope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
) -> None:
    head = WebSocketHead(
        request_target(scope),
        request_headers(scope["headers"]),
        scope["client"],
        tuple(scope["subprotocols"]),
    )
    connection = _AsgiConnection(receive, send, rooms.config.max_message_size)

    async def refuse(status: int, body: str) -> None:
        await _refuse(scope, send, status, body, 1013 if status == 503 else 1008)

    async with trio.open_nursery() as nursery:

        async def accept() -> _AsgiConnection:
            await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
            nursery.start_soon(connection.watch_cancellation)
            return connection

        ended = await serve_session(rooms, head, accept=accept, refuse=refuse)
        if ended is not None:
            code, reason = ended
            # The session's writer gives up on its close frame after close_timeout,
            # but hypercorn's shielded write it was stuck in may still get through;
            # ending without a close would make hypercorn send 1011 instead.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await connection.close(1000 if code in (1005, 1006) else code, reason)
        nursery.cancel_scope.cancel()


@final
class _AsgiConnection:
    """`Connection` over the ``receive`` and ``send`` of an accepted ASGI WebSocket."""

    def __init__(
        self, receive: ASGIReceiveCallable, send: ASGISendCallable, max_message_size: int
    ) -> None:
        self._receive = receive
        self._send = send
        self._max_message_size = max_message_size
        self._receive_scope: trio.CancelScope | None = None
        self._close_sent = False
        # The server cancelled this ASGI call: it reads nothing more from the socket,
        # so the client's answer to our close frame will never arrive.
        self._abandoned = False

    def attach(self, outbound: OutboundQueue) -> None:
        # Hypercorn answers pings itself: no control frames to queue.
        pass

    async def receive(self) -> str | bytes:
        if self._abandoned and self._close_sent:
            raise ConnectionEnded(1006, "server stopped", by_peer=True, send_close=False)
        message: ASGIReceiveEvent | None = None
        with trio.CancelScope() as scope:
            self._receive_scope = scope
            message = await self._receive()
        self._receive_scope = None
        if message is None:  # cancelled by `watch_cancellation`
            raise ConnectionEnded(1006, "server stopped", by_peer=True, send_close=False)
        if message["type"] == "websocket.receive":
            text = message["text"]
            if text is not None:
                size = len(text) if text.isascii() else len(text.encode())
                data: str | bytes = text
            else:
                data = message["bytes"] or b""
                size = len(data)
            if size > self._max_message_size:
                raise ConnectionEnded(1009, "message too big", by_peer=False)
            return data
        if message["type"] == "websocket.disconnect":
            # Hypercorn has completed the close handshake (or the socket is gone).
            raise ConnectionEnded(message["code"], "", by_peer=True, send_close=False)
        raise ConnectionEnded(1006, f"unexpected ASGI event {message['type']}", by_peer=True)

    async def send(self, frames: list[Frame]) -> None:
        send = self._send
        with _closing_is_broken():
            for frame in frames:
                if frame.opcode == TEXT:
                    await send(
                        {"type": "websocket.send", "bytes": None, "text": frame.payload.decode()}
                    )
                elif frame.opcode == BINARY:
                    await send({"type": "websocket.send", "bytes": frame.payload, "text": None})

    async def close(self, code: int, reason: str) -> None:
        if not self._close_sent:
            self._close_sent = True
            with _closing_is_broken():
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            self._stop_receiving_if_abandoned()

    async def watch_cancellation(self) -> None:
        """Sleep until the ASGI call is cancelled; then stop waiting for the client."""
        try:
            await trio.sleep_forever()
        finally:
            self._abandoned = True
            self._stop_receiving_if_abandoned()

    def _stop_receiving_if_abandoned(self) -> None:
        if self._abandoned and self._close_sent and self._receive_scope is not None:
            self._receive_scope.cancel()


@contextmanager
def _closing_is_broken() -> Generator[None]:
    """Treat hypercorn closing the socket under a send as the connection being gone.

    hypercorn 0.18 serialises the app's writes but closes the socket (``send_eof``)
    without that lock, so a write racing with the close of a connection the client
    broke raises ``trio.BusyResourceError``.
    """
    try:
        yield
    except trio.BusyResourceError as exc:
        raise trio.BrokenResourceError("hypercorn closed the connection") from exc


async def _refuse(
    scope: WebsocketScope, send: ASGISendCallable, status: int, body: str, code: int
) -> None:
    """Refuse a WebSocket before its upgrade: as HTTP when the server allows it."""
    if "websocket.http.response" in scope["extensions"]:
        data = body.encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": data, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": code, "reason": body[:100]})
