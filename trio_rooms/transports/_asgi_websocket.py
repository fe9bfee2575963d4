"""The ASGI websocket scope: its events adapted to the core's `Connection` port.

Hypercorn does the WebSocket protocol itself (pings, its own message size limit, the
close handshake), so `_AsgiConnection` only turns ``websocket.receive`` and
``websocket.disconnect`` into messages and `ConnectionEnded`, and frames into
``websocket.send`` and ``websocket.close``. What a session means is the core's
`serve_session`.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast, final

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
    # The session runs in this frame, not in a coroutine of its own: every message
    # resumes the call through each frame above its read.
    with counted(rooms, scope["client"]):
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
                nursery.start_soon(connection.watch_cancellation, nursery.cancel_scope)
                return connection

            ended = await serve_session(rooms, head, accept=accept, refuse=refuse)
            if isinstance(ended, tuple):  # (hypercorn owns the tasks: it never parks)
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
        #: hypercorn's queue of events for this call, when ``receive`` is its bound
        #: ``receive``: read without a cancel scope per message, closed to stop a read.
        self._events = _memory_channel_of(receive)
        self._send = send
        self._max_message_size = max_message_size
        # Below this many characters a text message is within the limit in any encoding.
        self._short_text = max_message_size // 4
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
            raise _server_stopped()
        events = self._events
        if events is None:
            message = await self._receive_cancellable()
        else:
            try:
                message = await events.receive()
            except (trio.ClosedResourceError, trio.EndOfChannel):
                raise _server_stopped() from None
        if message["type"] == "websocket.receive":
            text = message["text"]
            if text is not None:
                if len(text) <= self._short_text:
                    return text
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

    async def _receive_cancellable(self) -> ASGIReceiveEvent:
        """``receive()`` in a scope that `watch_cancellation` can cancel (any ASGI server)."""
        message: ASGIReceiveEvent | None = None
        with trio.CancelScope() as scope:
            self._receive_scope = scope
            message = await self._receive()
        self._receive_scope = None
        if message is None:  # cancelled by `watch_cancellation`
            raise _server_stopped()
        return message

    async def send(self, frames: list[Frame]) -> None:
        send = self._send
        try:
            for frame in frames:
                if frame.opcode == TEXT:
                    await send(
                        {"type": "websocket.send", "bytes": None, "text": frame.payload.decode()}
                    )
                elif frame.opcode == BINARY:
                    await send({"type": "websocket.send", "bytes": frame.payload, "text": None})
        except trio.BusyResourceError as exc:
            raise _closed_under_send(exc) from exc

    async def close(self, code: int, reason: str) -> None:
        if not self._close_sent:
            self._close_sent = True
            try:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            except trio.BusyResourceError as exc:
                raise _closed_under_send(exc) from exc
            finally:
                self._stop_receiving_if_abandoned()

    async def watch_cancellation(self, own: trio.CancelScope) -> None:
        """Sleep until the ASGI call is cancelled; then stop waiting for the client.

        Not when the call ends and cancels ``own`` itself: the client may still answer
        (or drop), and hypercorn then puts ``websocket.disconnect`` in its channel,
        which must not be closed (its connection would fail).
        """
        try:
            await trio.sleep_forever()
        finally:
            if not own.cancel_called:
                self._abandoned = True
                self._stop_receiving_if_abandoned()

    def _stop_receiving_if_abandoned(self) -> None:
        if not (self._abandoned and self._close_sent):
            return
        if self._events is not None:
            # Wakes a read in progress (or the next one) with ClosedResourceError.
            self._events.close()
        elif self._receive_scope is not None:
            self._receive_scope.cancel()


def _memory_channel_of(
    receive: ASGIReceiveCallable,
) -> trio.MemoryReceiveChannel[ASGIReceiveEvent] | None:
    """The trio memory channel ``receive`` is the bound ``receive`` of, if it is one.

    hypercorn's trio worker hands each call its queue's ``receive``: reading the channel
    itself spares a cancel scope per message, which is a third of the session's own
    work per message in an echo.
    """
    channel: object = getattr(receive, "__self__", None)
    if isinstance(channel, trio.MemoryReceiveChannel) and receive == channel.receive:
        return cast("trio.MemoryReceiveChannel[ASGIReceiveEvent]", channel)
    return None


def _server_stopped() -> ConnectionEnded:
    return ConnectionEnded(1006, "server stopped", by_peer=True, send_close=False)


def _closed_under_send(exc: trio.BusyResourceError) -> trio.BrokenResourceError:
    """Hypercorn closing the socket under a send: the connection is gone.

    hypercorn 0.18 serialises the app's writes but closes the socket (``send_eof``)
    without that lock, so a write racing with the close of a connection the client
    broke raises ``trio.BusyResourceError``.
    """
    return trio.BrokenResourceError(f"hypercorn closed the connection ({exc})")


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
