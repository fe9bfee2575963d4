"""Exceptions the client raises, besides ``ConnectionClosedError`` and ``DecodeError``.

::

    RoomsError
    ├── ClientQueueFullError (trio.WouldBlock)   send() found the send queue full
    ├── ConnectionRejectedError (ConnectionError)
    │                                            the server refused the WebSocket handshake
    └── ServerError                              the server sent a library ``{"error": ...}`` frame
"""

from __future__ import annotations

import trio

from .._errors import RoomsError

__all__ = ["ClientQueueFullError", "ConnectionRejectedError", "ServerError"]


class ClientQueueFullError(RoomsError, trio.WouldBlock):
    """``RoomClient.send`` found ``max_queued`` frames waiting to be written.

    While disconnected every message waits for the next connection, so this is how a
    long outage reaches the sender. ``limit`` is the bound.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the send queue is full: {limit} messages are waiting to be written "
            "(the client is disconnected or the server reads too slowly)"
        )
        self.limit = limit


class ConnectionRejectedError(RoomsError, ConnectionError):
    """The server answered the WebSocket handshake with an HTTP error; never retried.

    ``status_code`` is the HTTP status (400, 401, 403, 404, ...), ``reason`` the body.
    """

    def __init__(self, status_code: int, reason: str = "") -> None:
        super().__init__(
            f"the server rejected the connection with HTTP {status_code}"
            + (f": {reason}" if reason else "")
        )
        self.status_code = status_code
        self.reason = reason


class ServerError(RoomsError):
    """The server sent a library error frame ``{"error": text}``, for example about a
    message of ours it could not decode. The connection stays open. ``text`` is the
    server's reason."""

    def __init__(self, text: str) -> None:
        super().__init__(f"the server reported an error: {text}")
        self.text = text
