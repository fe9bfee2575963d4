"""A TCP proxy to a local server whose connections can go silent, like a vanished peer."""

from __future__ import annotations

import attrs
import trio

__all__ = ["Link", "SilentProxy"]


@attrs.define
class Link:
    silent: bool


@attrs.define
class SilentProxy:
    """Forwards 127.0.0.1:``port`` to Redis; `silence` makes its connections drop every byte.

    A silenced connection stays open and answers nothing, like a peer that vanished
    without a reset; connections made after `speak` forward again, silenced ones never.
    """

    target: int
    port: int = 0
    silent: bool = False
    links: list[Link] = attrs.field(factory=list[Link])

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._forward, listeners)

    def silence(self) -> None:
        self.silent = True
        for link in self.links:
            link.silent = True

    def speak(self) -> None:
        self.silent = False

    async def _forward(self, downstream: trio.SocketStream) -> None:
        link = Link(self.silent)
        self.links.append(link)
        async with (
            downstream,
            await trio.open_tcp_stream("127.0.0.1", self.target) as upstream,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(self._pump, link, downstream, upstream, nursery.cancel_scope)
            nursery.start_soon(self._pump, link, upstream, downstream, nursery.cancel_scope)

    async def _pump(
        self,
        link: Link,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        both: trio.CancelScope,
    ) -> None:
        try:
            while data := await source.receive_some():
                if not link.silent:
                    await sink.send_all(data)
        except trio.BrokenResourceError:
            pass
        both.cancel()
