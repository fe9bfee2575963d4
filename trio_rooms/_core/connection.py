"""The port between the core and a transport: one accepted WebSocket connection."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import trio

from .outbound import Frame, OutboundQueue

__all__ = [
    "Connection",
    "ConnectionEnded",
    "ConnectionParked",
    "KeepsUnsent",
    "Watchable",
    "close_within",
]


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


@runtime_checkable
class Watchable(Protocol):
    """A `Connection` its transport can read without a task waiting on it.

    A task that waits for each message costs a readiness wait, an epoll change and a
    task switch per message; a watched connection's socket is watched with the other
    watched ones by one task of the transport's, which calls back on input. For a
    relayed client (`relay_session`), whose messages are handed on without waiting.
    Whoever watches it calls ``receive`` only once it called `unwatch`.
    """

    def watch(self, readable: Callable[[], None]) -> Callable[[], str | bytes] | None:
        """Call ``readable`` (from another task) when input may have come, until `unwatch`.

        It is called too when the connection is closed under the watch. It must not
        block nor raise. Returns how to read the connection without waiting while
        watched: the next message, or `ConnectionEnded` as ``receive`` raises it, or
        `trio.WouldBlock` if nothing came (``readable`` follows when something does).
        What came before the watch is read by it too: call it once first. None, having
        watched nothing, if the transport cannot watch it (read it with ``receive``).
        """
        ...

    def unwatch(self) -> None:
        """Stop calling ``readable`` (nothing if not watched)."""
        ...


@runtime_checkable
class KeepsUnsent(Protocol):
    """A `Connection` whose ``send``, cancelled part way, keeps the bytes it did not write.

    They go first at its next ``send`` or ``close``, so a write given up never leaves a
    frame cut in two on the wire: the frames of a cancelled ``send`` all reach the peer,
    whole and in order, once the connection is written again. For a relayed client whose
    owner was lost (`MovableConnection`): its session moves at once, without waiting for
    a write the client may take long to let through.
    """

    @property
    def keeps_unsent(self) -> bool:
        """Whether it does (a transport may, for some streams only)."""
        ...


async def close_within(connection: Connection, code: int, reason: str, timeout: float) -> None:
    """Close ``connection`` with ``code``, for ``timeout`` seconds at most.

    A client that does not read holds a close frame's write for as long as it likes
    (its socket's window stays shut): past ``timeout`` the close is given up, and the
    transport ends the connection once its task returns. A peer already gone is no error.
    """
    with (
        trio.move_on_after(timeout),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await connection.close(code, reason)
