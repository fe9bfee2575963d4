"""`SocketStream`: the embedded server's stream over an accepted stdlib socket.

trio's `trio.SocketStream` wraps trio's socket object, which wraps the stdlib one, and
holds a conflict detector: over 250 bytes per connection for as long as it lives, where
the embedded transport reads and writes the descriptor itself (`os.read`, `os.write`,
trio's readiness waits). This is the rest of a stream over the stdlib socket, for the
handshake, a refusal, a route's answer, the writer and the close, with trio's semantics:
each call is a checkpoint (a cancelled one did nothing), `trio.ClosedResourceError` once
the stream was closed here, `trio.BrokenResourceError` for what the peer or the network
did, and `trio.BusyResourceError` for two tasks sending at once (two reading at once,
trio's readiness wait refuses). The socket options are trio's too.

One difference, asked for with ``keep_unsent``: a ``send_all`` cancelled part way keeps
the bytes it did not write, and the next ``send_all`` writes them first, so that a
WebSocket connection whose write was given up still carries whole frames only
(`StreamConnection`, `KeepsUnsent`).
"""

from __future__ import annotations

import errno
import socket as stdlib_socket
from typing import final

import trio

__all__ = ["RawSocket", "SocketStream", "socket_of"]

#: What a socket a transport reads and writes directly may be.
RawSocket = stdlib_socket.socket | trio.socket.SocketType

_RECEIVE_SIZE = 65536
# What the socket calls raise once it was closed (here, or by another task): trio's.
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})


@final
class SocketStream(trio.abc.HalfCloseableStream):
    """A `trio.abc.HalfCloseableStream` over a connected stdlib TCP socket, which it owns."""

    # One per connection, alive as long as it.
    __slots__ = ("_eof_sent", "_sending", "keep_unsent", "socket", "unsent")

    def __init__(self, socket: stdlib_socket.socket) -> None:
        # An accepted socket is blocking, whatever its listener is.
        socket.setblocking(False)
        # trio's defaults (see `trio.SocketStream`): no Nagle delay, and a socket is
        # writable only while little is unsent.
        try:
            socket.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, True)
            if hasattr(stdlib_socket, "TCP_NOTSENT_LOWAT"):
                socket.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NOTSENT_LOWAT, 2**14)
        except OSError:
            pass  # not TCP (or the peer reset it already: the first read says so)
        #: The socket, read and written directly by the transport (its descriptor is -1
        #: once closed: a write then fails, and cannot reach another connection's).
        self.socket = socket
        self._sending = False
        self._eof_sent = False
        #: A cancelled `send_all` keeps what it did not write (`unsent`), for the next.
        self.keep_unsent = False
        #: What a cancelled `send_all` did not write, with ``keep_unsent``: written first
        #: by the next one.
        self.unsent = b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_sent:
            raise trio.ClosedResourceError("can't send data after sending EOF")
        self._enter_send()
        try:
            if self.unsent:
                data, self.unsent = self.unsent + data, b""
            with memoryview(data) as view:
                if not view:
                    if self.socket.fileno() == -1:
                        raise trio.ClosedResourceError("socket was already closed")
                    await trio.lowlevel.checkpoint()
                    return
                total = len(view)
                sent = 0
                while sent < total:
                    with view[sent:] as remaining:
                        try:
                            sent += await self._send_some(remaining)
                        except trio.Cancelled:
                            if self.keep_unsent:
                                self.unsent = bytes(remaining)
                            raise
        finally:
            self._sending = False

    async def _send_some(self, data: memoryview) -> int:
        # As trio's socket does: try first, yielding after; wait only if it would block.
        await trio.lowlevel.checkpoint_if_cancelled()
        sent = _try_send(self.socket, data)
        if sent is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return sent
        while sent is None:
            await trio.lowlevel.wait_writable(self.socket)
            sent = _try_send(self.socket, data)
        return sent

    async def wait_send_all_might_not_block(self) -> None:
        self._enter_send()
        try:
            if self.socket.fileno() == -1:
                raise trio.ClosedResourceError("socket was already closed")
            await trio.lowlevel.wait_writable(self.socket)
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        self._enter_send()
        try:
            await trio.lowlevel.checkpoint()
            if self._eof_sent:
                return  # idempotent, as trio's is
            try:
                self.socket.shutdown(stdlib_socket.SHUT_WR)
            except OSError as exc:
                raise _translated(exc) from exc
            self._eof_sent = True
        finally:
            self._sending = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            max_bytes = _RECEIVE_SIZE
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        await trio.lowlevel.checkpoint_if_cancelled()
        data = _try_receive(self.socket, max_bytes)
        if data is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        while data is None:
            await trio.lowlevel.wait_readable(self.socket)
            data = _try_receive(self.socket, max_bytes)
        return data

    async def aclose(self) -> None:
        socket = self.socket
        if socket.fileno() != -1:
            # Wakes a task waiting on it (with ClosedResourceError), as trio's close does.
            trio.lowlevel.notify_closing(socket)
            socket.close()
        await trio.lowlevel.checkpoint()

    def _enter_send(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is currently sending data on this stream")
        self._sending = True


def socket_of(stream: trio.abc.Stream) -> RawSocket | None:
    """The socket under ``stream``, to read and write directly; None if it is no socket's."""
    if isinstance(stream, SocketStream | trio.SocketStream):
        return stream.socket
    return None


def _try_send(socket: stdlib_socket.socket, data: memoryview) -> int | None:
    """How much of ``data`` the socket took; None if it would block."""
    try:
        return socket.send(data)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise _translated(exc) from exc


def _try_receive(socket: stdlib_socket.socket, max_bytes: int) -> bytes | None:
    """What the socket received (empty at its end); None if nothing yet."""
    try:
        return socket.recv(max_bytes)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise _translated(exc) from exc


def _translated(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")
