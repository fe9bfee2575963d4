"""`serve_listeners`: trio's, but the handler closes its own stream.

`trio.serve_listeners` closes a connection's stream once its handler returns; the
handler of a connection whose session parks returns with the connection open (a later
task runs it on, `_parking`), so it closes the stream itself, when the connection ends.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

__all__ = ["serve_listeners"]

#: What ``accept`` raises when the process is out of descriptors or memory: retried.
_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_RETRY_SECONDS = 0.1

_logger = logging.getLogger("trio_rooms")


async def serve_listeners(
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    listeners: list[trio.SocketListener],
    nursery: trio.Nursery,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Accept on every listener until cancelled, each connection's handler in ``nursery``.

    The handler owns its stream: it must close it, and must not raise. With
    ``nursery.start``, returns once every listener accepts.
    """
    async with trio.open_nursery() as accepting:
        for listener in listeners:
            accepting.start_soon(_accept, listener, handler, nursery)
        task_status.started()
    raise AssertionError("the accept loops returned")  # pragma: no cover - they never do


async def _accept(
    listener: trio.SocketListener,
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    nursery: trio.Nursery,
) -> NoReturn:
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _CAPACITY_ERRNOS:
                    raise
                _logger.error(
                    "accept returned %s (%s); retrying in %s seconds",
                    errno.errorcode[exc.errno],
                    os.strerror(exc.errno),
                    _RETRY_SECONDS,
                    exc_info=True,
                )
                await trio.sleep(_RETRY_SECONDS)
            else:
                nursery.start_soon(handler, stream)
