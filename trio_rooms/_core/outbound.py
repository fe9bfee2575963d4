"""Encoded outbound frames and the bounded per-session queue that holds them.

A broadcast encodes its message once per wire format into one `Frame`; the same
object is put on every recipient's queue. Transports turn a frame into bytes once
(the embedded server caches the framed bytes on the object), so the per-recipient
cost of a broadcast is one append.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final, final

import trio

__all__ = ["BINARY", "PING", "PONG", "TEXT", "Frame", "OutboundQueue", "QueueOverflow"]

TEXT: Final = 0x1
BINARY: Final = 0x2
PING: Final = 0x9
PONG: Final = 0xA


@final
class Frame:
    """One outbound WebSocket message: an opcode and its payload.

    ``wire`` is a cache for transports that frame the payload themselves; it is
    filled the first time a transport needs it and then shared by every recipient.
    """

    __slots__ = ("opcode", "payload", "wire")

    def __init__(self, opcode: int, payload: bytes) -> None:
        self.opcode = opcode
        self.payload = payload
        self.wire: bytes | None = None

    def __repr__(self) -> str:
        return f"Frame(opcode={self.opcode:#x}, payload={self.payload[:40]!r})"


class QueueOverflow(Exception):
    """The queue went past one of its bounds."""


@final
class OutboundQueue:
    """A bounded FIFO of frames with a single consumer, the session's writer.

    ``put`` never blocks: past ``max_messages`` or ``max_bytes`` it raises
    `QueueOverflow` and the caller applies the slow-consumer policy. Control frames
    (pings, pongs) are small and bypass the bounds, so keepalive works even when the
    queue is full.
    """

    __slots__ = (
        "_bytes",
        "_closed",
        "_direct_ready",
        "_frames",
        "_waiter",
        "direct",
        "max_bytes",
        "max_messages",
    )

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._frames: deque[Frame] = deque()
        self._bytes = 0
        self._closed = False
        self._waiter: trio.lowlevel.Task | None = None
        self._direct_ready = False
        #: Set by a transport that can write without waiting: writes a frame's bytes
        #: if the socket takes them and returns what it did not take (None: nothing
        #: was written; the frame goes on the queue).
        self.direct: Callable[[Frame], bytes | None] | None = None

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: Frame) -> bool:
        """Queue ``frame``; return False if the queue is closed (the frame is dropped)."""
        if self._closed:
            return False
        size = len(frame.payload)
        if len(self._frames) >= self.max_messages or self._bytes + size > self.max_bytes:
            raise QueueOverflow
        self._frames.append(frame)
        self._bytes += size
        if self._waiter is not None:
            self._wake()
        return True

    def allow_direct(self) -> None:
        """Let the next `put_now` write straight to the transport (once).

        The session's handler allows it before each message: the first reply then
        skips a wake-up of the writer, and the replies after it are batched as usual.
        """
        self._direct_ready = True

    def put_now(self, frame: Frame) -> bool:
        """Like `put`, but write ``frame`` at once if allowed (`allow_direct`)."""
        if self._direct_ready:
            self._direct_ready = False
            if self._write_direct(frame):
                return True
        return self.put(frame)

    def put_first(self, frame: Frame) -> bool:
        """Like `put`, but the first frame since the writer parked is written at once.

        For broadcasts: the writer is woken all the same, so the frames that follow in
        the same turn find it scheduled and are queued and sent in one batch, and it
        re-arms this when it parks again.
        """
        if self._write_direct(frame):
            if self._waiter is not None:
                self._wake()
            return True
        return self.put(frame)

    def _write_direct(self, frame: Frame) -> bool:
        """Write ``frame`` through ``direct`` if the writer is idle with nothing queued.

        The writer must be parked: then it is not in the middle of a write of its own.
        What the transport did not take goes first in the queue, for the writer.
        """
        direct = self.direct
        if direct is None or self._waiter is None or self._frames or self._closed:
            return False
        rest = direct(frame)
        if rest is None:
            return False
        if rest:  # a partial write
            tail = Frame(frame.opcode, b"")
            tail.wire = rest
            self._frames.append(tail)
            self._wake()
        return True

    def put_control(self, frame: Frame) -> None:
        """Queue a control frame, ignoring the bounds (its payload is at most 125 bytes)."""
        if not self._closed:
            self._frames.append(frame)
            if self._waiter is not None:
                self._wake()

    def clear(self) -> None:
        """Drop everything queued."""
        self._frames.clear()
        self._bytes = 0

    def close(self) -> None:
        """Accept nothing more; the consumer drains what is queued, then gets ``[]``."""
        self._closed = True
        if self._waiter is not None:
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        assert waiter is not None
        trio.lowlevel.reschedule(waiter)

    async def _wait(self) -> None:
        # One consumer: park it directly (cheaper than a ParkingLot on the put path).
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already waiting on this queue")
        self._waiter = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def get_batch(self, max_bytes: int) -> list[Frame]:
        """Wait for frames and take them all (at least one, then up to ``max_bytes``).

        Returns ``[]`` once the queue is closed and empty.
        """
        frames = self._frames
        while not frames:
            if self._closed:
                return []
            await self._wait()
        batch: list[Frame] = []
        size = data_bytes = 0
        while frames and size < max_bytes:
            frame = frames.popleft()
            batch.append(frame)
            size += len(frame.payload)
            if frame.opcode <= BINARY:
                data_bytes += len(frame.payload)
        self._bytes -= data_bytes
        return batch
