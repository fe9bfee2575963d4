"""``Inbox``: the frames a session's reader queued for its handler, in order.

What `trio.open_memory_channel` gives, cut to one sender and one receiver: a bounded
queue, a task parked on each end, and the ends closed once. A memory channel keeps two
channel objects, their task sets, two ordered dicts and a deque per session, idle or
not; this keeps one small object, and makes its deque at the first frame queued.
"""

from __future__ import annotations

from collections import deque
from typing import final

import outcome
import trio

__all__ = ["Inbox"]


@final
class Inbox:
    """A bounded queue from one task (the reader) to one other (the handler)."""

    __slots__ = (
        "_capacity",
        "_items",
        "_pending",
        "_receive_closed",
        "_receiver",
        "_send_closed",
        "_sender",
    )

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"an inbox holds at least one frame, got {capacity}")
        self._capacity = capacity
        self._items: deque[str | bytes] | None = None
        self._receiver: trio.lowlevel.Task | None = None
        #: The sender, parked on a full queue, and the frame it waits to put.
        self._sender: trio.lowlevel.Task | None = None
        self._pending: str | bytes = b""
        self._send_closed = False
        self._receive_closed = False

    # ------------------------------------------------------------- the reader's

    def send_nowait(self, item: str | bytes) -> None:
        """Queue ``item`` (or hand it to the waiting receiver).

        Raises:
            trio.WouldBlock: the queue is full.
            trio.BrokenResourceError: the receiver is gone.
        """
        if self._receive_closed:
            raise trio.BrokenResourceError("the session's handler has ended")
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            trio.lowlevel.reschedule(receiver, outcome.Value(item))
            return
        items = self._items
        if items is None:
            items = self._items = deque()
        elif len(items) >= self._capacity:
            raise trio.WouldBlock
        items.append(item)

    async def send(self, item: str | bytes) -> None:
        """Queue ``item``, waiting while the queue is full.

        Raises:
            trio.BrokenResourceError: the receiver is gone (``item`` is not queued).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.send_nowait(item)
        except trio.WouldBlock:
            pass  # waited for below, not inside `except` (its traceback would stay)
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        self._sender = trio.lowlevel.current_task()
        self._pending = item
        await trio.lowlevel.wait_task_rescheduled(self._abort_send)

    def _abort_send(self, _: object) -> trio.lowlevel.Abort:
        self._sender = None
        self._pending = b""
        return trio.lowlevel.Abort.SUCCEEDED

    def close_send(self) -> None:
        """No more frames will come: the receiver gets `trio.EndOfChannel` once empty."""
        self._send_closed = True
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            trio.lowlevel.reschedule(receiver, outcome.Error(trio.EndOfChannel()))

    @property
    def receiving(self) -> bool:
        """Whether the receiver waits for a frame (none is queued)."""
        return self._receiver is not None

    # ------------------------------------------------------------ the handler's

    def receive_nowait(self) -> str | bytes:
        """The oldest queued frame.

        Raises:
            trio.WouldBlock: none is queued.
            trio.EndOfChannel: none is queued, and the sender is gone.
        """
        items = self._items
        if items:
            item = items.popleft()
            sender = self._sender
            if sender is not None:  # it waited for this room in the queue
                items.append(self._pending)
                self._sender = None
                self._pending = b""
                trio.lowlevel.reschedule(sender)
            return item
        if self._send_closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> str | bytes:
        """The oldest queued frame, waiting for one.

        Raises:
            trio.EndOfChannel: none is queued, and the sender is gone.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            item = self.receive_nowait()
        except trio.WouldBlock:
            pass  # waited for below, not inside `except` (its traceback would stay)
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        self._receiver = trio.lowlevel.current_task()
        received: str | bytes = await trio.lowlevel.wait_task_rescheduled(self._abort_receive)
        return received

    def _abort_receive(self, _: object) -> trio.lowlevel.Abort:
        self._receiver = None
        return trio.lowlevel.Abort.SUCCEEDED

    def close_receive(self) -> None:
        """The receiver is gone: what is queued is dropped, a waiting sender is told."""
        self._receive_closed = True
        self._items = None
        sender, self._sender = self._sender, None
        self._pending = b""
        if sender is not None:
            trio.lowlevel.reschedule(sender, outcome.Error(trio.BrokenResourceError()))
