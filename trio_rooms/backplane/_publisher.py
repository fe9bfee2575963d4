"""The publisher: a bounded queue of broadcasts, published in order and pipelined.

`Publisher.publish` never blocks: the queue is bounded in payloads and in bytes, both
checked where payloads arrive. `Publisher.take_batch`, `Publisher.done` and
`Publisher.lost` are the queue's whole life, so a test drives it without a socket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import ClassVar, NoReturn, final

import trio
from coredis.connection import BaseConnection

from ._connection import BATCH, round_trips, watch
from ._scripts import command

__all__ = ["Publisher"]


@final
class Publisher:
    """Queues ``(channel, node id + payload)`` and publishes them on its connection.

    Args:
        node_id: Starts every message, so that subscribers skip their own.
        max_queue: Payloads waiting; beyond it `publish` drops.
        max_queue_bytes: Bytes of the payloads waiting; beyond it `publish` drops.
        timeout: Bound on each batch's replies.
        changed: Called whenever ``published`` or ``dropped`` changed.
    """

    #: Names its connection in logs.
    name: ClassVar = "publishing"

    def __init__(
        self,
        node_id: bytes,
        *,
        max_queue: int,
        max_queue_bytes: int,
        timeout: float,
        changed: Callable[[], None],
    ) -> None:
        self._node_id = node_id
        self._statistics_changed = changed
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._timeout = timeout
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._queued_bytes = 0
        self._queue_filled = trio.Event()
        self._in_flight = 0
        # Until the first connection, payloads wait for it; once it is lost, they are
        # dropped until it is made again (at most once, never late and unbounded).
        self._accepting = True
        self.published = 0
        self.dropped = 0

    @property
    def queued_bytes(self) -> int:
        """Bytes of the payloads waiting to be published."""
        return self._queued_bytes

    def publish(self, channel: bytes, payload: bytes) -> None:
        """Queue ``payload`` on ``channel``; drop and count it when lost or full."""
        if (
            not self._accepting
            or len(self._queue) >= self._max_queue
            or self._queued_bytes + len(payload) > self._max_queue_bytes
        ):
            self.dropped += 1
            self._statistics_changed()
            return
        self._queue.append((channel, self._node_id + payload))
        self._queued_bytes += len(payload)
        self._queue_filled.set()

    def take_batch(self) -> list[tuple[bytes, bytes]]:
        """Take the next messages to send in one round trip (in flight until `done`)."""
        count = min(len(self._queue), BATCH)
        batch = [self._queue.popleft() for _ in range(count)]
        self._queued_bytes -= sum(len(data) - len(self._node_id) for _, data in batch)
        self._in_flight = count
        return batch

    def done(self) -> None:
        """Redis confirmed the batch in flight."""
        self.published += self._in_flight
        self._in_flight = 0
        self._statistics_changed()

    def lost(self) -> None:
        """The connection is gone: what waits and what was in flight is dropped."""
        self.dropped += len(self._queue) + self._in_flight
        self._queue.clear()
        self._queued_bytes = 0
        self._in_flight = 0
        self._accepting = False
        self._statistics_changed()

    async def run(self, connection: BaseConnection, *, task_status: trio.TaskStatus[None]) -> None:
        """Publish on ``connection`` until it is lost (raises then).

        ``started()`` comes at once: the queue is taken from then on.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, connection)
            self._accepting = True
            task_status.started()
            await self._publish_forever(connection)

    async def _publish_forever(self, connection: BaseConnection) -> NoReturn:
        while True:
            while not self._queue:
                self._queue_filled = trio.Event()
                await self._queue_filled.wait()
            batch = self.take_batch()
            await round_trips(
                connection,
                [command(b"PUBLISH", channel, data) for channel, data in batch],
                timeout=self._timeout,
            )
            self.done()
