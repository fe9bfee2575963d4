"""``ClientState``: what the public client, its supervisor and each connection share."""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar, final

import trio

from .._wire import SessionFrame
from ._events import ClientEvent
from ._requests import PendingRequests

__all__ = ["ClientState"]

ServerMsgT = TypeVar("ServerMsgT")


@final
class ClientState(Generic[ServerMsgT]):
    """The queues and flags of one client, across its connections.

    ``RoomClient`` is a thin endpoint over it, as trio's memory channels are over their
    state: it queues into ``outbox`` and receives from ``inbox``; connections drain the
    one and fill the other; the supervisor reports on ``events_send`` and ends it all.
    """

    def __init__(self) -> None:
        #: Encoded frames waiting to be written, in order; dequeued once written.
        self.outbox: deque[str | bytes] = deque()
        self._outbox_changed = trio.Event()
        # Unbuffered: the reader hands each message over, so a slow receiver slows it.
        self.inbox_send: trio.MemorySendChannel[ServerMsgT | Exception]
        self.inbox: trio.MemoryReceiveChannel[ServerMsgT | Exception]
        self.inbox_send, self.inbox = trio.open_memory_channel[ServerMsgT | Exception](0)
        # Presence metas are of the client's class: `RoomClient.events` says which.
        self.events_send: trio.MemorySendChannel[ClientEvent[object]]
        self.events: trio.MemoryReceiveChannel[ClientEvent[object]]
        self.events_send, self.events = trio.open_memory_channel[ClientEvent[object]](math.inf)
        #: The session the server named last; ``None`` before it, or without resume.
        self.session: SessionFrame | None = None
        #: Server messages received in this session (library frames aside): how far a
        #: resume asks the server's replay to start (``&seen=``).
        self.seen: int = 0
        self.connected: bool = False
        self._disconnected = trio.Event()
        #: ``aclose`` began: write what is queued, close with 1000, reconnect no more.
        self.closing: bool = False
        #: Why the client ended, once it has, unless it was closed.
        self.outcome: Exception | None = None
        #: Set once the supervisor has returned.
        self.done: trio.Event = trio.Event()
        #: Requests waiting for their reply.
        self.requests: PendingRequests = PendingRequests()

    def queue(self, frame: str | bytes) -> None:
        """Put ``frame`` at the end of the outbox, for the writer of this connection."""
        self.outbox.append(frame)
        self._outbox_changed.set()

    def wake_writer(self) -> None:
        """Make the writer look at the outbox again (it changed other than by ``queue``)."""
        self._outbox_changed.set()

    async def wait_outbox_changed(self) -> None:
        """Wait for the next ``queue`` or ``wake_writer`` after this call."""
        self._outbox_changed = trio.Event()
        await self._outbox_changed.wait()

    def set_connected(self) -> None:
        """A connection is up: ``wait_disconnected`` waits for its end."""
        self.connected = True
        self._disconnected = trio.Event()

    def set_disconnected(self) -> None:
        """The connection is gone: wake its waiters and fail the requests it carried."""
        self.connected = False
        self._disconnected.set()
        self.requests.connection_lost(self.outbox)

    async def wait_disconnected(self) -> None:
        """Return once no connection is up (at once if none is)."""
        if self.connected:
            await self._disconnected.wait()
