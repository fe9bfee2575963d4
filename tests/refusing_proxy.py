"""A TCP proxy to Redis that can refuse the relays' new connections, as a Redis that
cannot be reached would, while every other connection through it goes on."""

from __future__ import annotations

import attrs
import trio

__all__ = ["RefusingProxy"]

#: What a relay connection's first command (CLIENT SETNAME) names it.
_RELAYS = b"trio_rooms.relays."


@attrs.define
class RefusingProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``.

    While `refusing`, a connection whose first command names it a relay connection is
    closed at once, and counted in `refused`; `wait_refused` waits for a count of them.
    """

    target: int
    port: int = 0
    refusing: bool = False
    refused: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._forward, listeners)

    async def wait_refused(self, count: int) -> None:
        while self.refused < count:
            await self._changed.wait()

    async def _forward(self, downstream: trio.SocketStream) -> None:
        async with downstream:
            try:
                first = await downstream.receive_some()  # one write: the whole command
            except trio.BrokenResourceError:
                return
            if self.refusing and _RELAYS in first:
                self.refused += 1
                self._changed.set()
                self._changed = trio.Event()
                return
            async with (
                await trio.open_tcp_stream("127.0.0.1", self.target) as upstream,
                trio.open_nursery() as nursery,
            ):
                await upstream.send_all(first)
                nursery.start_soon(_pump, downstream, upstream, nursery.cancel_scope)
                nursery.start_soon(_pump, upstream, downstream, nursery.cancel_scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, both: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some():
            await sink.send_all(data)
    except trio.BrokenResourceError:
        pass
    both.cancel()
