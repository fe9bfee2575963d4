"""One connection to Redis: opening it, round trips on it, and noticing that it is lost.

Every fault that means "Redis is lost" is in `FAULTS`; the roles (membership,
subscriber, publisher) let them propagate and `trio_rooms.backplane._supervisor`
decides what to connect again.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Final, NoReturn, cast

import anyio
import coredis
import trio
from coredis.commands import CommandRequest
from coredis.connection import BaseConnection
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import RedisError
from coredis.typing import ResponseType

from .._redis import guarded
from .._resp import ConnectionEndedError

__all__ = [
    "BATCH",
    "FAULTS",
    "UNREACHABLE",
    "ConnectionEndedError",
    "client_name",
    "first_leaf",
    "open_connection",
    "ping",
    "round_trips",
    "unreachable",
    "watch",
]

#: Commands per round trip: PUBLISHes when many are queued, membership writes.
BATCH: Final = 512


#: What losing Redis looks like: these end a connection and degrade the node;
#: anything else is a bug and propagates out of `RedisBackplane.run`.
FAULTS: Final = (
    RedisError,
    OSError,  # TimeoutError included: coredis's reply timeout
    trio.TooSlowError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    ConnectionEndedError,
)

#: The `FAULTS` that mean Redis could not be reached (down, hung, or still loading its
#: data), as against a reply that refused (any other `RedisError`: a script error,
#: READONLY, OOM, a failed AUTH). coredis raises its ``ConnectionError`` (``BusyLoadingError``
#: and ``ProtocolError`` among them) for a refused or lost connection and the built-in
#: ``TimeoutError`` for a reply that did not come.
UNREACHABLE: Final = (
    RedisConnectionError,
    OSError,
    trio.TooSlowError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    ConnectionEndedError,
)


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (a group of `FAULTS` too) says Redis could not be reached."""
    if isinstance(error, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", error)
        return all(unreachable(leaf) for leaf in group.exceptions)
    return isinstance(error, UNREACHABLE)


def client_name(role: str, node_id: str) -> str:
    """The CLIENT SETNAME of a cluster node's ``role`` connections: ``trio_rooms.ROLE.NODE``.

    By it an operator (or a test) finds one node's connections in CLIENT LIST and kills
    only those. A name is printable ASCII with no space: the node id is %-quoted.
    """
    return f"trio_rooms.{role}.{urllib.parse.quote(node_id, safe='')}"


@asynccontextmanager
async def open_connection(
    url: str, *, timeout: float, name: str = "trio_rooms.backplane"
) -> AsyncGenerator[BaseConnection]:
    """Connect to Redis at ``url`` as client ``name``; leaving closes the connection.

    Each connection has a pool of its own: coredis's pool never hands back the slot
    of a leased connection that died, and a pool of one is cheap to make again.

    Raises:
        FAULTS: no connection within ``3 * timeout``.
    """
    pool = coredis.ConnectionPool.from_url(
        url,
        decode_responses=False,
        stream_timeout=timeout,
        connect_timeout=timeout,
        max_connections=1,
        client_name=name,
    )
    # pyright sees a union of pools; each gets a subclass of its own class.
    pool.connection_class = guarded(pool.connection_class)  # pyright: ignore[reportAttributeAccessIssue]
    async with pool:
        # connect_timeout bounds the TCP connect, stream_timeout each reply of the
        # handshake; this bounds the whole.
        with trio.fail_after(3 * timeout):
            connection = await pool.get_connection()
        yield connection


async def round_trips(
    connection: BaseConnection, commands: Sequence[CommandRequest[ResponseType]], *, timeout: float
) -> None:
    """Send ``commands`` pipelined, in batches; raise if a batch had an error.

    A batch is one write and one wait (``RequestBatch``), not one per command. Each
    batch's replies must come within ``timeout`` of waiting for them; coredis drops
    the connection when they do not.
    """
    batches = [
        connection.create_request_batch(commands[start : start + BATCH], timeout=timeout)
        for start in range(0, len(commands), BATCH)
    ]
    for batch in batches:
        with trio.fail_after(2 * timeout):  # coredis's own timeout comes first
            results = await batch
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def ping(connection: BaseConnection, *, timeout: float) -> None:
    """PING, and raise unless PONG comes within ``timeout``.

    On the subscribed connection too: with RESP3 (coredis speaks nothing else) a
    subscribed connection takes any command and replies normally, as coredis's own
    ``PubSub._keepalive`` relies on.
    """
    with trio.fail_after(timeout):
        await connection.create_request(b"PING")


async def watch(connection: BaseConnection) -> NoReturn:
    """Raise once ``connection`` has ended (it receives no push messages)."""
    async for _ in connection.push_messages:
        pass
    raise ConnectionEndedError(f"{connection!r} ended")  # pragma: no cover


def first_leaf(error: BaseException) -> BaseException:
    """The first exception in ``error`` that is not a group."""
    while isinstance(error, BaseExceptionGroup):
        error = cast("BaseExceptionGroup[BaseException]", error).exceptions[0]
    return error
