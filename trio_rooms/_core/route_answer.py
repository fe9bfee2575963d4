"""`answer_route`: run a room's route for a request whose body has been read.

The same for a request this node received (`http_serving`) and for one another node
relays to this one, the room's owner (`RoomRegistry.answer_relayed`): find the route,
get the room, run the handler as an event of the room, and answer once the writes it
made are durable (the output gate).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import (
    BackplaneError,
    OwnedElsewhereError,
    RoomsClosedError,
    StorageError,
    TooManyRoomsError,
)
from ..codec._record import JsonRecords
from .room import Room, room_runner_of
from .routes import HttpRequest, Response, call_route, match_route, unsupported_body

__all__ = ["answer_route", "route_path"]

_logger = logging.getLogger("trio_rooms")


def route_path(prefix: str, request: HttpRequest) -> str:
    """The path of ``request`` inside its room: ``/info`` for ``{prefix}/{room}/info``."""
    return request.path[len(prefix) + 1 + len(request.room) :]


async def answer_route(
    get: Callable[[str], Awaitable[Room[Any]]],
    room_class: type[Room[Any]] | None,
    records: JsonRecords,
    request: HttpRequest,
    path: str,
) -> Response:
    """The response of the route at ``path`` of ``request.room`` to ``request``.

    404, 405 and 415 come before the room is made when its class is known; 503 if the
    rooms are shutting down, past ``max_rooms`` or the storage failed; 500 if the room
    failed to start or the handler raised.

    Raises:
        OwnedElsewhereError: another node owns the room (the caller relays).
        BackplaneError: the cluster could not be asked who owns it.
    """
    endpoint = None
    if room_class is not None:
        match = match_route(room_class, request.method, path)
        if match.response is not None:
            return match.response
        endpoint = match.endpoint
        assert endpoint is not None
        if refusal := unsupported_body(endpoint, request):
            return refusal
    try:
        room = await get(request.room)
    except (OwnedElsewhereError, BackplaneError):
        raise
    except RoomsClosedError:
        return Response.text(503, "Service Unavailable: the rooms are shutting down")
    except TooManyRoomsError as exc:
        return Response.text(503, f"Service Unavailable: {exc}")
    except Exception:
        _logger.exception("room %r failed to start", request.room)
        return Response.text(500, "Internal Server Error")
    if endpoint is None:  # a factory we cannot see through: the room tells its class
        match = match_route(type(room), request.method, path)
        if match.response is not None:
            return match.response
        endpoint = match.endpoint
        assert endpoint is not None
        if refusal := unsupported_body(endpoint, request):
            return refusal
    async with room.exclusive():  # a route call is an event of the room
        response = await call_route(room, endpoint, request, records)
    state = room_runner_of(room).state
    try:
        # The output gate: the answer leaves once the writes it reflects are durable.
        await state.wait_durable(state.pending())
    except StorageError:
        return Response.text(503, "Service Unavailable: storage failed")
    return response
