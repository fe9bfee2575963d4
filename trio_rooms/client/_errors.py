"""Exceptions the client raises, besides ``ConnectionClosedError`` and ``DecodeError``.

::

    RoomsError
    ├── ClientQueueFullError (trio.WouldBlock)   send() found the send queue full
    ├── ConnectError (ConnectionError)           no WebSocket could be opened: unreachable, or
    │   │                                        the connection ended before it was open
    │   └── ConnectTimeoutError (TimeoutError)   ... not open within ``connect_timeout``
    ├── ConnectionRejectedError (ConnectionError)
    │                                            the server refused the WebSocket handshake
    └── ServerError                              the server sent a library ``{"error": ...}`` frame
"""

from __future__ import annotations

import trio

from .._errors import RoomsError

__all__ = [
    "ClientQueueFullError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionRejectedError",
    "ServerError",
]


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


class ConnectError(RoomsError, ConnectionError):
    """No WebSocket connection could be opened; retried when reconnecting.

    The name or address did not resolve, the TCP connection was refused, or the
    connection ended (reset, or closed) or broke the protocol before the handshake and,
    with ``resume``, the session frame were through. The cause is chained.
    """


class ConnectTimeoutError(ConnectError, TimeoutError):
    """The connection was not open within ``connect_timeout``; retried when reconnecting.

    ``timeout`` is that bound, in seconds.
    """

    def __init__(self, message: str, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


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
