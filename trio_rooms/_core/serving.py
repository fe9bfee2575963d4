"""The serving port: what every transport calls for one WebSocket connection.

A transport parses its protocol and adapts its I/O; the rules live here, once: counting
a connection against the caps, admission before the upgrade (origin, caps, room
capacity, ``authorize``), the session's run and the code it ends with, and what a
shutdown or a failing room turns into (1001, 1011). `serve_http` (in `http_serving`)
is the same for a route request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, final

import attrs

from .._errors import RoomsClosedError
from .admission import ConnectionCounter
from .connection import Connection, close_within
from .parking import ParkedSession
from .request import ConnectRequest
from .rooms import Rooms, registry_of
from .routing import HttpRejection, route_websocket

__all__ = [
    "Counted",
    "ParkedSession",
    "WebSocketHead",
    "admit_session",
    "connection_counter",
    "counted",
    "serve_session",
]

_logger = logging.getLogger("trio_rooms")


@final
@attrs.frozen
class WebSocketHead:
    """What a transport parsed of an opening handshake."""

    #: The target as the client sent it (percent-encoded), with its query.
    target: str
    #: Lower-case names, in the order received.
    headers: tuple[tuple[str, str], ...]
    client: tuple[str, int] | None
    subprotocols: tuple[str, ...] = ()


def counted(rooms: Rooms[Any], client: tuple[str, int] | None) -> Counted:
    """Count one connection (or route request) of ``client`` against the caps while inside.

    ``with counted(rooms, client): ...``. The embedded server counts from the TCP accept,
    so a client stuck in its handshake holds a slot; hypercorn's ASGI calls from
    ``websocket.connect`` or the request.
    """
    return Counted(registry_of(rooms).connections, client[0] if client is not None else None)


def connection_counter(rooms: Rooms[Any]) -> ConnectionCounter:
    """What `counted` counts into, for a transport that enters and exits it itself.

    One object of ``rooms``: a connection task that counts itself keeps nothing of its
    own for it, where a ``with`` block keeps its slot and the slot's ``__exit__``.
    """
    return registry_of(rooms).connections


@final
class Counted:
    """The slot `counted` holds: a small object, as it lives as long as its connection."""

    __slots__ = ("_address", "_counter")

    def __init__(self, counter: ConnectionCounter, address: str | None) -> None:
        self._counter = counter
        self._address = address

    def __enter__(self) -> None:
        self._counter.enter(self._address)

    def __exit__(self, *exc_info: object) -> None:
        self._counter.exit(self._address)


async def serve_session(
    rooms: Rooms[Any],
    head: WebSocketHead,
    *,
    accept: Callable[[], Awaitable[Connection]],
    refuse: Callable[[int, str], Awaitable[None]],
) -> tuple[int, str] | ParkedSession | None:
    """Admit the session ``head`` asks for and run it until it ends (or parks).

    `admit_session`, then what it returns awaited: see there.
    """
    session = await admit_session(rooms, head, accept=accept, refuse=refuse)
    return await session


async def admit_session(
    rooms: Rooms[Any],
    head: WebSocketHead,
    *,
    accept: Callable[[], Awaitable[Connection]],
    refuse: Callable[[int, str], Awaitable[None]],
) -> Awaitable[tuple[int, str] | ParkedSession | None]:
    """Admit the session ``head`` asks for: what the caller awaits to run it in its frame.

    ``refuse(status, body)`` answers a handshake that is not admitted (404 for another
    path, 400 for a bad room name or format, 403, 503, ``authorize``'s status...);
    ``accept()`` completes the upgrade and returns the connection the session runs on.
    Awaited, the result returns the code and reason the session ended with, None if it
    was refused, or the `ParkedSession` to resume if the connection asked it to park. A
    `Rooms` that is shutting down closes the connection with 1001; a room that fails
    to start or to admit, with 1011 (logged). The session's own failures are its run's
    to log and close (`SessionRunner.run`).

    The session's run is returned, not awaited here: a transport's task that awaits it
    itself waits a coroutine frame less for as long as the session lives.
    """
    registry = registry_of(rooms)
    try:
        target = route_websocket(registry.config, head.target)
        request = ConnectRequest(
            room=target.room,
            path=target.path,
            query_string=target.query_string,
            headers=head.headers,
            client=head.client,
            subprotocols=head.subprotocols,
        )
        await registry.admit(request)
    except HttpRejection as rejection:
        await refuse(rejection.status, rejection.body)
        return _ended(None)
    connection = await accept()
    wire = target.wire
    # Nothing of the handshake needs to live as long as the session.
    del accept, refuse, head, target
    try:
        placed = await registry.place(request.room, request, wire, connection)
    except RoomsClosedError:
        await close_within(connection, 1001, "server shutting down", registry.config.close_timeout)
        return _ended((1001, "server shutting down"))
    except Exception:
        _logger.exception("room %r could not admit a session", request.room)
        await close_within(connection, 1011, "room failed to start", registry.config.close_timeout)
        return _ended((1011, "room failed to start"))
    if isinstance(placed, tuple):
        return _ended(placed)
    return placed.session.run(placed.connection, placed.room)


async def _ended(
    result: tuple[int, str] | None,
) -> tuple[int, str] | ParkedSession | None:
    """A session that ended (or was refused) in its admission: ``result``, at once."""
    return result
