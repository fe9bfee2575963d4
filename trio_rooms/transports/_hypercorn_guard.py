"""Keep one connection's failure inside hypercorn from stopping all of hypercorn.

Hypercorn 0.18's per-connection task lets anything but `OSError` escape: a non-ASCII
byte in a ``Sec-WebSocket-Protocol`` or ``Sec-WebSocket-Extensions`` header raises
`UnicodeDecodeError` in its handshake code, before any ASGI app runs, and
`trio.serve_listeners` then ends ``hypercorn.trio.serve`` with it, and every session
with it. `guard_connections` wraps that task once, so such a failure ends its own
connection only (hypercorn has already closed the socket) and is logged in one
throttled line. The app constructors call it: it covers ``hypercorn.trio.serve`` in a
user's nursery and the hypercorn CLI alike.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Final

from hypercorn.trio.tcp_server import TCPServer

from ._throttle import ThrottledLog

__all__ = ["guard_connections"]

_failed = ThrottledLog(logging.getLogger("trio_rooms"), logging.WARNING, 10.0)

_GUARDED: Final = "__trio_rooms_guarded__"


def guard_connections() -> None:
    """Make a failing hypercorn connection end only itself (idempotent)."""
    run: Callable[[TCPServer], Awaitable[None]] = TCPServer.run
    if getattr(run, _GUARDED, False):
        return

    @wraps(run)
    async def guarded_run(self: TCPServer) -> None:
        try:
            await run(self)
        except Exception as exc:  # one connection's protocol failure: never the server's
            _failed.log("hypercorn failed on one connection, which was closed: %r", exc)

    setattr(guarded_run, _GUARDED, True)
    setattr(TCPServer, "run", guarded_run)  # noqa: B010 - patched on purpose, once
