"""What a room class puts on the wire: its session's two unions and its routes.

The codecs and the route decoder the server would build are built here first, so
that a room the server refuses is refused with the server's own error.
"""

from __future__ import annotations

import typing
from typing import Any, cast, final

import attrs

from .._core.room import Room
from .._core.routes import Response, route_table
from .._core.typeargs import union_members
from ..codec import JsonCodec
from ..codec._record import JsonRecords
from ._model import AnyOf, Ref, Route, WireType
from ._reader import Reader

__all__ = ["RoomWire", "read_room"]


@final
@attrs.frozen
class RoomWire:
    """A room's roots in the wire model: message references and routes."""

    client: list[Ref]
    server: list[Ref]
    routes: list[Route]


def read_room(room: type[Room[Any]], reader: Reader) -> RoomWire:
    """The roots of ``room``, read into ``reader``.

    Raises:
        TypeError: ``room`` is not a room class whose session binds its messages,
            or its types cannot be put on the wire or described.
    """
    candidate = cast("object", room)  # checked for callers without a type checker
    if not (isinstance(candidate, type) and issubclass(candidate, Room)):
        raise TypeError(f"{room!r} is not a Room subclass")
    session = room.session_class
    if session is None:
        raise TypeError(f"{room.__qualname__} is generic: it names no session class")
    client_classes, server_classes = session.message_classes()
    options = {"camel_case": reader.camel_case, "forbid_extra_keys": reader.strict}
    JsonCodec(*client_classes, **options)
    JsonCodec(*server_classes, **options)
    records = JsonRecords(**options)
    routes: list[Route] = []
    table = route_table(room)
    for path in sorted(table):
        for method, endpoint in sorted(table[path].items()):
            where = f"{room.__qualname__}.{endpoint.name}"
            body: WireType | None = None
            if endpoint.body_type is not None:
                records.check(endpoint.body_type)
                body = reader.type_of(endpoint.body_type, where)
            response = _response(room, endpoint.name, records, reader, where)
            routes.append(Route(method, path, body, response))
    return RoomWire(
        client=[reader.message(cls, cls.tag) for cls in client_classes],
        server=[reader.message(cls, cls.tag) for cls in server_classes],
        routes=routes,
    )


def _response(
    room: type, name: str, records: JsonRecords, reader: Reader, where: str
) -> WireType | None:
    """The JSON answer of a route: its attrs result classes; a ``Response`` is not described."""
    hints = typing.get_type_hints(getattr(room, name))
    if "return" not in hints:
        raise TypeError(f"route handler {where} has no return annotation")
    classes: list[type] = []
    for member in union_members(hints["return"]):
        if member is Response:
            continue
        if not (isinstance(member, type) and attrs.has(member)):
            raise TypeError(
                f"route handler {where} returns {member!r}: expected attrs classes or Response"
            )
        records.check(member)
        classes.append(member)
    if not classes:
        return None
    # Sent, never decoded by the server: any of the shapes, not a dispatching union.
    models = tuple(reader.type_of(cls, where) for cls in classes)
    return models[0] if len(models) == 1 else AnyOf(models)
