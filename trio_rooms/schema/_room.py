"""What a room class puts on the wire: its session's two unions and its routes.

The codecs and the route decoder the server would build are built here first, so
that a room the server refuses is refused with the server's own error.
"""

from __future__ import annotations

import typing
from typing import Any, cast, final

import attrs

from .._core.presence import declared_presence
from .._core.room import Room
from .._core.routes import Response, route_table
from .._core.typeargs import union_members
from .._rpc import Request
from ..codec import JsonCodec
from ..codec._record import JsonRecords
from ..codec._values import ValueCodec
from ._model import AnyOf, Ref, Route, WireType
from ._reader import Reader

__all__ = ["RoomWire", "read_room"]


@final
@attrs.frozen
class RoomWire:
    """A room's roots in the wire model: message references, replies and routes."""

    client: list[Ref]
    server: list[Ref]
    routes: list[Route]
    #: Each request's tag and its reply classes (server messages), in client order.
    replies: list[tuple[str, list[Ref]]]
    #: The presence metadata class (``presence = Presence(Meta)``), if it has one.
    presence: Ref | None = None


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
        replies=_replies(room, client_classes, server_classes, reader),
        presence=_presence(room, reader),
    )


def _presence(room: type, reader: Reader) -> Ref | None:
    """The metadata class of the room's presence, as its server encodes it."""
    declared = declared_presence(room)
    if declared is None:
        return None
    meta = declared.meta_class
    # The server's encoder of presence metadata, so its refusal is the server's.
    ValueCodec(meta, "json", camel_case=reader.camel_case, forbid_extra_keys=reader.strict)
    return reader.nested(meta)


def _replies(
    room: type, client: tuple[type, ...], server: tuple[type, ...], reader: Reader
) -> list[tuple[str, list[Ref]]]:
    """The declared reply of each request among the client messages.

    A request without a handler is listed too (the server refuses it with ``$error``),
    as the schemas list a message ``on_message`` ignores: they describe the declaration.
    """
    replies: list[tuple[str, list[Ref]]] = []
    for cls in client:
        if not issubclass(cls, Request):
            continue
        request = cast("type[Request[Any]]", cls)
        if not request.reply_classes:
            raise TypeError(
                f"{room.__qualname__}: the request {request.__qualname__} declares no reply "
                "(subclass Request[Reply])"
            )
        for reply in request.reply_classes:
            if reply not in server:
                raise TypeError(
                    f"{room.__qualname__}: the reply {reply.__qualname__} of the request "
                    f"{request.__qualname__} is not one of the server messages"
                )
        replies.append((request.tag, [reader.message(r, r.tag) for r in request.reply_classes]))
    return replies


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
