"""The embedded server's stream helpers: reads and writes without trio's stream layers,
an answer sent before the connection closes, closing, and what a peer's failure is.

Shared by the opening handshake (`_opening`), the connection after it
(`_stream_connection`) and the connection's task (`websocket`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os

import trio

from ._socket_stream import RawSocket, socket_of
from ._throttle import ThrottledLog

__all__ = [
    "LINGER_BYTES",
    "RECEIVE_SIZE",
    "close_stream",
    "describe",
    "log_failure",
    "peer_gone",
    "peer_of",
    "read_now",
    "read_ready",
    "read_some",
    "send_and_linger",
    "send_small",
]

_logger = logging.getLogger("trio_rooms")

#: Bytes asked of the socket per read.
RECEIVE_SIZE = 65536

# What a peer causes (a reset) is logged without a traceback, and a flood of it in one
# line per interval.
_lost = ThrottledLog(_logger, logging.DEBUG, 10.0)

# After an answer that ends a connection: how long, and how much, the client's input is
# drained.
_LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024

# What socket calls (getpeername, setsockopt, os.write, close) raise when the peer or
# the network dropped the connection; trio turns them into BrokenResourceError itself.
_PEER_ERRNOS = frozenset(
    {
        errno.ECONNABORTED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENOTCONN,
        errno.EPIPE,
        errno.ETIMEDOUT,
    }
)


def log_failure(exc: Exception, peer: tuple[str, int] | None) -> None:
    """Log what ended a connection (called in its ``except`` block, for the traceback)."""
    if peer_gone(exc):
        _lost.log("connection from %s lost: %r", describe(peer), exc)
    else:
        _logger.exception("connection from %s failed", describe(peer))


async def send_and_linger(stream: trio.abc.Stream, response: bytes, *, within: float = 0.0) -> None:
    """Send ``response``, then drop what the client still sends until it closes.

    Closing a socket with unread input resets the connection, and the client would lose
    the response it has not read yet (RFC 9112 section 9.6): the server half-closes and
    reads on instead, for `_LINGER_SECONDS` and `LINGER_BYTES` at most. Writing the
    response may take ``within`` seconds more (a route's answer can be large).
    """
    with trio.move_on_after(_LINGER_SECONDS + within):
        await stream.send_all(response)
        if isinstance(stream, trio.abc.HalfCloseableStream):
            await stream.send_eof()
        drained = 0
        with contextlib.suppress(trio.BrokenResourceError):  # it read the answer and left
            while drained < LINGER_BYTES and (data := await stream.receive_some(RECEIVE_SIZE)):
                drained += len(data)


def read_now(stream: trio.abc.Stream) -> bytes | None:
    """What the socket has already received (empty at its end); None if nothing yet."""
    socket = socket_of(stream)
    if socket is None:
        return None
    try:
        return os.read(socket.fileno(), RECEIVE_SIZE)
    except OSError:  # nothing yet, or broken: `receive_some` says which
        return None


async def read_some(stream: trio.abc.Stream) -> bytes:
    """``stream.receive_some()``; on a socket, its readiness wait and one ``os.read``.

    A client accepted before its request arrived (a third of them, when many connect at
    once) is read here: trio's layers around the read cost more than the read itself.
    What the socket raises (a reset) is the peer's doing, as `peer_gone` knows.
    """
    socket = socket_of(stream)
    if socket is None:
        return bytes(await stream.receive_some(RECEIVE_SIZE))
    while True:
        await trio.lowlevel.wait_readable(socket)
        try:
            return os.read(socket.fileno(), RECEIVE_SIZE)
        except BlockingIOError:
            continue  # woken without data (spuriously)


async def send_small(stream: trio.abc.Stream, data: bytes) -> None:
    """``stream.send_all(data)``, trying one ``os.write`` first.

    A response of a few hundred bytes fits a fresh socket's buffer: trio's layers
    around the write cost more than the write itself (`StreamConnection._send_now`
    does the same for frames).
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    socket = socket_of(stream)
    if socket is not None:
        # Full, or broken (closed: fileno -1): `send_all` says which.
        with contextlib.suppress(OSError):
            data = data[os.write(socket.fileno(), data) :]
        if not data:
            return
    await stream.send_all(data)


async def close_stream(stream: trio.abc.Stream) -> None:
    try:
        await trio.aclose_forcefully(stream)
    except Exception as exc:
        # A stream with a protocol of its own (TLS) may fail to say goodbye to a peer
        # that is gone; raising here would reach the listener.
        if not peer_gone(exc):
            _logger.exception("closing the connection from a client failed")


def peer_gone(exc: BaseException) -> bool:
    """Whether ``exc`` says the peer or the network ended the connection (no bug here)."""
    if isinstance(exc, trio.BrokenResourceError):
        return True
    return isinstance(exc, OSError) and exc.errno in _PEER_ERRNOS


def describe(peer: tuple[str, int] | None) -> str:
    return f"{peer[0]}:{peer[1]}" if peer is not None else "an unknown peer"


def peer_of(stream: trio.abc.Stream) -> tuple[str, int] | None:
    socket = socket_of(stream)
    if socket is not None:
        address: object = socket.getpeername()
        if isinstance(address, tuple) and len(address) >= 2:  # pyright: ignore[reportUnknownArgumentType] - AF_INET/AF_INET6
            host, port = address[0], address[1]  # pyright: ignore[reportUnknownVariableType]
            if isinstance(host, str) and isinstance(port, int):
                return host, port
    return None


def read_ready(socket: RawSocket) -> bytes | None:
    """What the socket has received (empty once reset or closed); None if nothing yet.

    Its own function: an exception caught in a coroutine gives the coroutine's frame an
    object of its own (a fifth of a KiB) for as long as it lives; caught here, it goes.
    A closed socket's ``fileno()`` is -1 (EBADF): empty too.
    """
    try:
        return os.read(socket.fileno(), RECEIVE_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""
