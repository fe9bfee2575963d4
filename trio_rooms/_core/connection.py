"""The port between the core and a transport: one accepted WebSocket connection."""

from __future__ import annotations

from typing import Protocol

from .outbound import Frame, OutboundQueue

__all__ = ["Connection", "ConnectionEnded", "ConnectionParked"]


class ConnectionEnded(Exception):
    """Raised by `Connection.receive` when no more messages will arrive.

    ``by_peer``: the peer sent a close frame (we echo its code) or the transport is
    gone (``send_close`` is then False and ``code`` 1006). Otherwise the peer broke
    the protocol or a limit, we close with ``code``, and ``receive`` may be called
    again to drain what the peer still sends until its close frame arrives.
    """

    def __init__(
        self, code: int, reason: str = "", *, by_peer: bool, send_close: bool = True
    ) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.by_peer = by_peer
        self.send_close = send_close


class ConnectionParked(Exception):
    """Raised by `Connection.receive` to ask its session to park (`SessionRunner.run`).

    Nothing was consumed: the session parks if it is quiescent, else calls ``receive``
    again and loses nothing. Only a transport that can watch a parked connection
    without a task of its own raises it (the embedded server, ``park_after``).
    """


class Connection(Protocol):
    """What a transport gives the core for one accepted connection.

    The core calls ``receive`` from one task at a time (the session's handler between
    its messages, its reader while a hook waits) and ``send`` and ``close`` from another
    (the session's writer), never concurrently with themselves. A ``receive`` that waits
    may be cancelled (its caller is shutting down, `SessionIO`): it must stay usable,
    as the reader reads on until the peer answers the close. It may raise
    `ConnectionParked` instead of waiting on: the caller asks again, or parks.
    """

    def attach(self, outbound: OutboundQueue) -> None:
        """Give the connection its session's queue, for control frames (pongs, pings)."""
        ...

    async def receive(self) -> str | bytes:
        """Wait for the next complete message; raise `ConnectionEnded` when there is none."""
        ...

    async def send(self, frames: list[Frame]) -> None:
        """Write ``frames`` in order; raise `trio.BrokenResourceError` if the peer is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame (once); the caller bounds how long this may take."""
        ...
