"""`RespConnection`: a connection to Redis of our own, raw RESP on a trio stream.

The relay link (XADD, XREAD) and the storage's commits (`RedisStorage.commit`) use it,
each its own: they send bursts of small commands. Through coredis
each of them built a request object, went through its writer task and was parsed by its
reply machinery: more CPU than the relay's own work (session 7's profile). Here a burst
of commands is one write (`send`), and each socket read is parsed at once into every
reply it completes (`reply`). It speaks RESP2 (no HELLO), whose replies are five types.
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Final, TypeAlias, final

import coredis
import trio

__all__ = [
    "RESP_FAULTS",
    "ConnectionEndedError",
    "Reply",
    "RespConnection",
    "RespError",
    "open_resp",
    "resp_command",
    "resp_prefix",
    "resp_tail",
]

#: Bytes asked of the socket per read: a full XREAD of small entries in one.
_READ_SIZE: Final = 256 * 1024


class ConnectionEndedError(Exception):
    """A connection to Redis ended, or could not be made."""


class RespError(Exception):
    """An error reply of Redis (``-ERR ...``), as the exception it means here."""


#: What losing this connection looks like (besides `FAULTS`): reconnecting is the cure.
RESP_FAULTS: Final = (RespError, trio.BrokenResourceError, trio.ClosedResourceError)

#: A reply: a bulk or simple string, an integer, nil, an array of replies, or an error.
Reply: TypeAlias = "bytes | int | list[Reply] | RespError | None"


def resp_command(*args: bytes) -> bytes:
    """The bytes of one command."""
    # Appends, not one join of formatted pieces: fewer calls for a profiler to count,
    # but slower on CPython 3.11 (measured: 1.2 against 1.3 µs for an XADD).
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(b"\r\n")
    return b"".join(parts)


def resp_prefix(count: int, *head: bytes) -> bytes:
    """The bytes of the first arguments of a command of ``count``, made once for a
    command often sent with the same ones (`resp_tail` completes it): the relay link's
    XADDs differ only in their last argument, and a tail costs a tenth of a command."""
    return b"".join([b"*%d\r\n" % count, *(b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in head)])


def resp_tail(prefix: bytes, last: bytes) -> bytes:
    """The bytes of the command `resp_prefix` began, its last argument ``last``."""
    return b"".join((prefix, b"$%d\r\n" % len(last), last, b"\r\n"))


@final
class RespConnection:
    """Commands out in one write each burst, replies in order as they complete."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        # Written without trio's stream layer by `send_nowait` (a plain socket only).
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._buffer = bytearray()
        self._replies: deque[Reply] = deque()

    async def send(self, data: bytes) -> None:
        """Write commands (`resp_command`'s bytes, joined): one system call, mostly.

        Only one at a time (its callers take turns). What the socket takes at once is
        written without trio's stream layer (no turn of the scheduler for it).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        rest = self.send_nowait(data)
        if rest:
            await self._stream.send_all(rest)

    def send_nowait(self, data: bytes) -> bytes:
        """Write what the socket takes of ``data`` at once; return the rest for `send`.

        Only while no `send` is under way (the bytes would interleave). Over TLS, or
        when the socket is full or broken, nothing is written: `send` finds out which.
        """
        if self._socket is None:
            return data
        try:
            sent = os.write(self._socket.fileno(), data)
        except OSError:
            return data
        return data[sent:]

    async def reply(self, *, wait_first: bool = False) -> Reply:
        """The next reply (an error reply is returned, not raised).

        ``wait_first``: the reply seldom comes at once, and the socket is waited for
        before it is read, not read in vain first: a blocking read's (XREADGROUP BLOCK,
        answered once another client adds to the stream), or a script's (a commit).

        Raises:
            ConnectionEndedError: Redis closed the connection.
            RespError: what came is not RESP (this is not Redis).
            trio.BrokenResourceError: the connection was reset.
        """
        replies = self._replies
        while not replies:
            data = await self._receive(wait_first)
            if not data:
                raise ConnectionEndedError("Redis closed the relays' connection")
            buffer = self._buffer
            buffer += data
            position = 0
            while True:
                try:
                    parsed = _parse(buffer, position)
                except ValueError as exc:  # a length that is not a number
                    raise RespError(f"not a RESP2 reply: {bytes(buffer[:40])!r}") from exc
                if parsed is None:
                    break
                reply, position = parsed
                replies.append(reply)
            del buffer[:position]
        return replies.popleft()

    async def _receive(self, wait_first: bool) -> bytes | bytearray:
        """What the socket has received; empty at its end.

        On a plain socket, one ``os.read`` after its readiness wait, without trio's
        stream and socket layers: they cost more than the read (each reply of the relay
        link and of the commits is read so), and a read tried first in vain costs them
        twice. A read that did not wait is a checkpoint still, as trio's is, and
        cancel-safe as it is: cancelled before the read, or not at all.
        """
        socket = self._socket
        if socket is None:
            return await self._stream.receive_some(_READ_SIZE)
        if not wait_first:
            await trio.lowlevel.checkpoint_if_cancelled()
            data = _read_now(socket)
            if data is not None:
                # Shielded: a cancellation now would lose what was read.
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data
        while True:
            if socket.fileno() < 0:  # (wait_readable would not wake for it)
                raise trio.ClosedResourceError("the connection to Redis was closed")
            await trio.lowlevel.wait_readable(socket)
            data = _read_now(socket)
            if data is not None:
                return data

    async def call(self, *args: bytes) -> Reply:
        """Send one command and return its reply.

        Raises:
            RespError: Redis answered with an error.
        """
        await self.send(resp_command(*args))
        return _checked(await self.reply())

    async def aclose(self) -> None:
        """Close the connection."""
        await self._stream.aclose()


def _read_now(socket: trio.socket.SocketType) -> bytes | None:
    """What ``socket`` has received (empty at its end); None if nothing yet.

    Its own function: an exception caught in a coroutine gives the coroutine's frame an
    object of its own for as long as it lives; caught here, it goes.

    Raises:
        trio.ClosedResourceError: the socket was closed here.
        trio.BrokenResourceError: the connection was reset, or failed otherwise.
    """
    try:
        return os.read(socket.fileno(), _READ_SIZE)
    except BlockingIOError:
        return None
    except OSError as exc:
        if socket.fileno() < 0:
            raise trio.ClosedResourceError("the connection to Redis was closed") from exc
        raise trio.BrokenResourceError(f"the connection to Redis failed: {exc}") from exc


def _checked(reply: Reply) -> Reply:
    if isinstance(reply, RespError):
        raise reply
    return reply


def _parse(buffer: bytearray, position: int) -> tuple[Reply, int] | None:
    """The reply starting at ``position`` and the position after it; None if incomplete.

    Raises:
        RespError: not RESP (a reply type this connection never asks for).
        ValueError: a length or an integer that is not a number.
    """
    end = buffer.find(b"\r\n", position)
    if end < 0:
        return None
    kind = buffer[position]
    if kind == 0x24:  # $ bulk string
        size = int(buffer[position + 1 : end])
        if size < 0:
            return None, end + 2
        start = end + 2
        if len(buffer) < start + size + 2:
            return None
        return bytes(buffer[start : start + size]), start + size + 2
    if kind == 0x2A:  # * array
        count = int(buffer[position + 1 : end])
        if count < 0:
            return None, end + 2
        items: list[Reply] = []
        position = end + 2
        length = len(buffer)
        for _ in range(count):
            if position < length and buffer[position] == 0x24:
                # A bulk string item, inline: an XREADGROUP reply is mostly those (three
                # per stream entry), and a call per item cost more than its parsing.
                end = buffer.find(b"\r\n", position)
                if end < 0:
                    return None
                size = int(buffer[position + 1 : end])
                if size < 0:
                    items.append(None)
                    position = end + 2
                    continue
                start = end + 2
                position = start + size + 2
                if length < position:
                    return None
                items.append(bytes(buffer[start : start + size]))
                continue
            parsed = _parse(buffer, position)
            if parsed is None:
                return None
            item, position = parsed
            items.append(item)
        return items, position
    if kind == 0x3A:  # : integer
        return int(buffer[position + 1 : end]), end + 2
    if kind == 0x2B:  # + simple string
        return bytes(buffer[position + 1 : end]), end + 2
    if kind == 0x2D:  # - error
        return RespError(buffer[position + 1 : end].decode(errors="replace")), end + 2
    raise RespError(f"not a RESP2 reply: {bytes(buffer[position : position + 20])!r}")


@asynccontextmanager
async def open_resp(
    url: str, *, timeout: float, name: str = "trio_rooms.relays"
) -> AsyncGenerator[RespConnection]:
    """Connect to the Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``, with
    its user, password and database, and for TLS coredis's ``ssl_*`` parameters);
    leaving closes the connection, named ``name`` (CLIENT SETNAME).

    Raises:
        OSError, trio.TooSlowError, RespError: no connection within ``3 * timeout``,
            or Redis refused the credentials or the database.
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    database = query.get("db", [parts.path.strip("/") or "0"])[0]
    with trio.fail_after(3 * timeout):
        stream: trio.abc.Stream
        if parts.scheme == "unix":
            stream = await trio.open_unix_socket(parts.path)
            database = query.get("db", ["0"])[0]
        elif parts.scheme in ("redis", "rediss"):
            host = parts.hostname or "localhost"
            stream = await trio.open_tcp_stream(host, parts.port or 6379)
            if parts.scheme == "rediss":
                stream = trio.SSLStream(stream, _ssl_context(url), server_hostname=host)
        else:
            raise ValueError(f"a Redis URL is redis://, rediss:// or unix://, got {url!r}")
        connection = RespConnection(stream)
        try:
            if password is not None:
                credentials = [user.encode()] if user else []
                await connection.call(b"AUTH", *credentials, password.encode())
            if database != "0":
                await connection.call(b"SELECT", database.encode())
            await connection.call(b"CLIENT", b"SETNAME", name.encode())
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    try:
        yield connection
    finally:
        await trio.aclose_forcefully(stream)


def _ssl_context(url: str) -> ssl.SSLContext:
    """The TLS context coredis makes of ``url`` (its ``ssl_*`` parameters): the storage's
    and the leases' connections to the same Redis use the same."""
    pool = coredis.ConnectionPool.from_url(url)
    context = pool.connection_kwargs.get("ssl_context")
    return context if isinstance(context, ssl.SSLContext) else ssl.create_default_context()
