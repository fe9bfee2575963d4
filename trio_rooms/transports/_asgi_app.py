"""The ASGI app object: each scope to its adapter, and the lifespan that may own the rooms."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeAlias, final

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from .._core.rooms import Rooms
from ._asgi_http import serve_http_scope
from ._asgi_websocket import serve_websocket_scope

__all__ = ["OpenRooms", "RoomsApp"]

_logger = logging.getLogger("trio_rooms")

#: Opens the `Rooms` an owning app serves during its lifespan (`open_rooms`, partially applied).
OpenRooms: TypeAlias = Callable[[], AbstractAsyncContextManager[Rooms[Any]]]


@final
class RoomsApp:
    """The ASGI app: WebSocket sessions and HTTP routes of its `Rooms`."""

    def __init__(self, rooms: Rooms[Any] | None, open_own: OpenRooms | None) -> None:
        #: The `Rooms` requests go to; None outside the lifespan of an owning app.
        self._rooms = rooms
        self._open_own = open_own

    @classmethod
    def bound(cls, rooms: Rooms[Any]) -> RoomsApp:
        """An app serving ``rooms``, which the caller opens and closes."""
        return cls(rooms, None)

    @classmethod
    def owning(cls, open_own: OpenRooms) -> RoomsApp:
        """An app that enters ``open_own()`` on lifespan.startup, leaves it on shutdown."""
        return cls(None, open_own)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "websocket":
            await serve_websocket_scope(self._rooms, scope, receive, send)
        elif scope["type"] == "http":
            await serve_http_scope(self._rooms, scope, receive, send)
        else:
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        open_own = self._open_own
        if open_own is None:  # bound to a Rooms the caller owns
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            await send({"type": "lifespan.shutdown.complete"})
            return
        started = False
        try:
            async with open_own() as rooms:
                self._rooms = rooms
                started = True
                await send({"type": "lifespan.startup.complete"})
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
        except Exception as exc:
            self._rooms = None
            _logger.exception("rooms failed")
            if started:
                await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
            else:
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        self._rooms = None
        await send({"type": "lifespan.shutdown.complete"})
