"""The embedded server's accept loop: `trio.serve_listeners` for one kind of handler.

trio's loop accepts one connection per checkpoint, through three layers of wrappers
(and one failed ``accept`` each time the backlog is empty), and runs each handler
under a wrapper coroutine that closes the stream after it. Here a readable listener is
drained with plain ``accept`` calls (a burst of clients costs one wake-up and one
failed ``accept``), the peer's address comes with the socket (no ``getpeername``), and
the handler, which closes its stream itself, is the connection's task: one coroutine
less per connection, for as long as it lives. Its stream is the socket's own
(`SocketStream`), not trio's three objects over it. Errors are handled as trio does: the
same ones are skipped, logged and slept on, or raised.
"""

from __future__ import annotations

import errno
import logging
import os
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NoReturn

import trio

from ._socket_stream import SocketStream

__all__ = ["serve_accepting"]

#: What `serve_accepting` starts once per connection: it must close the stream.
Handler = Callable[[SocketStream, tuple[str, int] | None], Awaitable[None]]

# trio's: the peer left before its accept (or a firewall refused it); try the next.
_SKIPPED = frozenset(
    getattr(errno, name) for name in ("ECONNABORTED", "EPERM", "EPROTO") if hasattr(errno, name)
)
# trio's: out of descriptors or memory; sleep a little (the backlog waits) and retry.
_CAPACITY = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_CAPACITY_SLEEP = 0.1
# At most this many accepts per wake-up, so that the connections accepted get to run.
_BURST = 64

_logger = logging.getLogger("trio_rooms")


async def serve_accepting(
    handler: Handler,
    listeners: list[trio.SocketListener],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Accept on every listener until cancelled, each connection in a task of its own.

    The handlers run in a nursery of this call: cancelling it cancels them too, and it
    returns (raising `trio.Cancelled`) once they have ended. ``started()`` is called
    once every listener is being accepted on. The listeners are closed on the way out.
    """
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, handler, nursery)
        task_status.started()
    raise AssertionError("the accept loops never end")  # pragma: no cover


async def _accept_loop(
    listener: trio.SocketListener, handler: Handler, nursery: trio.Nursery
) -> NoReturn:
    # A stdlib socket over the listener's own (duplicated) descriptor: trio's socket
    # offers only its awaiting accept. Both are closed on the way out.
    listening = stdlib_socket.socket(fileno=os.dup(listener.socket.fileno()))
    listening.setblocking(False)
    # trio would make each task its name from the handler's: one string, per connection.
    name = _task_name(handler)
    with listening:
        async with listener:
            while True:
                await trio.lowlevel.wait_readable(listening)
                for _ in range(_BURST):
                    try:
                        accepted, address = listening.accept()
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno in _SKIPPED:
                            continue
                        if exc.errno not in _CAPACITY:
                            raise
                        _logger.error(
                            "accept returned %s; retrying in %s seconds",
                            errno.errorcode[exc.errno],
                            _CAPACITY_SLEEP,
                            exc_info=True,
                        )
                        await trio.sleep(_CAPACITY_SLEEP)  # sync-ok: trio's back-off, no event
                        break
                    nursery.start_soon(handler, SocketStream(accepted), _peer(address), name=name)


def _task_name(handler: Handler) -> str:
    """The name trio gives a task of ``handler`` (that of the function a partial wraps)."""
    function: object = handler.func if isinstance(handler, partial) else handler
    return f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', function)}"


def _peer(address: object) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:  # pyright: ignore[reportUnknownArgumentType] - AF_INET/AF_INET6
        host, port = address[0], address[1]  # pyright: ignore[reportUnknownVariableType]
        if isinstance(host, str) and isinstance(port, int):
            return host, port
    return None
