"""``PendingRequests``: the client's requests that wait for their reply, by request id."""

from __future__ import annotations

from collections.abc import Iterable
from typing import final

import trio

from .._errors import RequestError
from .._message import Message
from .._wire import MAX_RID

__all__ = ["PendingRequests", "Waiter"]


@final
class Waiter:
    """One request waiting for its reply (or the error that stands for it)."""

    __slots__ = ("done", "frame", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        #: The request's frame, as queued in the client's outbox.
        self.frame: str | bytes = b""
        self.result: Message | Exception | None = None

    def settle(self, result: Message | Exception) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()


@final
class PendingRequests:
    """Request ids are never reused by a client, so a late reply can only be dropped."""

    __slots__ = ("_last", "_waiting")

    def __init__(self) -> None:
        self._last = 0
        self._waiting: dict[int, Waiter] = {}

    def open(self) -> tuple[int, Waiter]:
        """A new request id and its waiter."""
        self._last = self._last + 1 if self._last < MAX_RID else 1
        waiter = Waiter()
        self._waiting[self._last] = waiter
        return self._last, waiter

    def discard(self, rid: int) -> None:
        """Forget the request ``rid`` (its caller gave up): a late reply is dropped."""
        self._waiting.pop(rid, None)

    def settle(self, rid: int, result: Message | Exception) -> bool:
        """Hand ``result`` to the request ``rid``; False if none waits (it gave up)."""
        waiter = self._waiting.pop(rid, None)
        if waiter is None:
            return False
        waiter.settle(result)
        return True

    def connection_lost(self, unwritten: Iterable[str | bytes]) -> None:
        """Fail the requests that were written on the connection that just ended.

        Their replies cannot come on the next one (replies are not replayed), and sending
        them again could run them twice; those still queued go out on the next one.
        """
        queued = {id(frame) for frame in unwritten}
        for rid, waiter in list(self._waiting.items()):
            if id(waiter.frame) not in queued:
                del self._waiting[rid]
                waiter.settle(RequestError("the connection was lost before the reply came"))

    def end(self, error: Exception) -> None:
        """The client ended: no request will be answered."""
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            waiter.settle(error)
