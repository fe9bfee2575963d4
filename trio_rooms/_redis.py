"""What both Redis backends need from coredis 6.9 beyond its public API, and how they
speak of a URL and of a failed connection in errors.

Imported only by the Redis backends (`trio_rooms.storage`, `trio_rooms.backplane`), after
`trio_rooms.storage.redis` or `trio_rooms.backplane.redis` checked that coredis is
installed.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final, TypeVar, cast

import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from coredis.connection import BaseConnection, TCPConnection, UnixDomainSocketConnection
from coredis.exceptions import ConnectionError as RedisConnectionError

if TYPE_CHECKING:
    from anyio.abc import ByteStream

__all__ = ["explained", "guarded", "redacted", "same_redis"]

ConnectionT = TypeVar("ConnectionT", bound=BaseConnection)


def guarded(connection_class: type[ConnectionT]) -> type[ConnectionT]:
    """The connection class to give a pool instead of ``connection_class``.

    A subclass of it whose failed connects leave nothing behind (`_connect_or_fail`).
    """
    return cast("type[ConnectionT]", _GUARDED.get(connection_class, connection_class))


async def _connect_or_fail(
    connection: BaseConnection, connect: Awaitable[ByteStream]
) -> ByteStream:
    """Await ``connection``'s attempt to connect, so that failing it leaves nothing behind.

    A cancellation surfaces as a coredis ConnectionError: coredis's pool hands a
    connection slot back only when the connection's ``run`` ends in an ``Exception``, so a
    cancellation escaping from ``_connect`` (our deadline while a TCP connect hangs: a full
    backlog, a host gone without a reset) would lose the slot for good, and after
    ``max_connections`` of them every later operation would wait forever. coredis itself
    turns a cancellation during its handshake into a ConnectionError the same way; trio
    delivers the cancellation again at the next checkpoint.

    A failed attempt also closes the connection's buffers (anyio memory streams), which
    coredis only closes once connected: left open they warn (ResourceWarning) when
    collected, possibly much later.
    """
    try:
        return await connect
    except BaseException as exc:
        for value in vars(connection).values():
            if isinstance(value, MemoryObjectSendStream | MemoryObjectReceiveStream):
                value.close()
        if isinstance(exc, trio.Cancelled):
            raise RedisConnectionError("connection attempt cancelled") from exc
        raise


class _TCPConnection(TCPConnection):
    async def _connect(self) -> ByteStream:
        return await _connect_or_fail(self, super()._connect())


class _UnixConnection(UnixDomainSocketConnection):
    async def _connect(self) -> ByteStream:
        return await _connect_or_fail(self, super()._connect())


_GUARDED: Final[dict[type[BaseConnection], type[BaseConnection]]] = {
    TCPConnection: _TCPConnection,
    UnixDomainSocketConnection: _UnixConnection,
}


def explained(error: BaseException) -> str:
    """``error`` and what caused it, as one line.

    coredis says "Unable to establish a connection to HOST:PORT" for a TLS handshake that
    failed (a certificate not signed by the CA the URL names) as for a refused connect;
    the cause (chained, perhaps in a group) is what tells them apart.
    """
    said = f"{type(error).__name__}: {error}"
    cause = error.__cause__
    while cause is not None:
        while isinstance(cause, BaseExceptionGroup):
            cause = cast("BaseExceptionGroup[BaseException]", cause).exceptions[0]
        said += f" ({type(cause).__name__}: {cause})"
        cause = cause.__cause__
    return said


def redacted(url: str) -> str:
    """``url`` without its user name, password and parameters, for logs and errors."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None:
        return f"{parts.scheme}://{parts.path}"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def same_redis(first: str, second: str) -> bool:
    """Whether two Redis URLs name the same database as the same user, however spelled:
    the scheme, host (in any case) and port (6379 when none), socket path, database (a
    path or ``?db=``, 0 when none) and user name; not the password or other parameters.

    Host names are not resolved: ``localhost`` and ``127.0.0.1`` are two Redis here.
    """
    try:
        return _where(first) == _where(second)
    except ValueError:  # a port that is none: the connection says so, not this
        return first == second


def _where(url: str) -> tuple[str, str, int | None, str, str, str]:
    parts = urllib.parse.urlsplit(url)
    database = urllib.parse.parse_qs(parts.query).get("db", [""])[0]
    if parts.scheme == "unix":
        return ("unix", "", None, parts.path, database or "0", parts.username or "")
    path = parts.path.strip("/")
    host = (parts.hostname or "localhost").lower()
    return (
        parts.scheme,
        host,
        parts.port or 6379,
        "",
        database or path or "0",
        parts.username or "",
    )
