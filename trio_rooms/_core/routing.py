"""Map a request target to a room before anything is created.

Shared by every transport so that every one of them accepts exactly the same URLs.
"""

from __future__ import annotations

from typing import final
from urllib.parse import parse_qsl

import attrs

from .._errors import RoomNameError
from ..codec import WireFormat
from .config import RoomsConfig, room_name_in_path

__all__ = ["HttpRejection", "WebSocketTarget", "route_websocket"]

_WIRE_FORMATS: dict[str, WireFormat] = {"json": "json", "msgpack": "msgpack"}


class HttpRejection(Exception):
    """Answer the request with this HTTP status and plain-text body, before any upgrade."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


@final
@attrs.frozen
class WebSocketTarget:
    room: str
    path: str
    query_string: str
    wire: WireFormat


def route_websocket(config: RoomsConfig, target: str) -> WebSocketTarget:
    """Resolve ``{prefix}/{room}/websocket?...``.

    Raises:
        HttpRejection: 404 for a path of another shape, 400 for an invalid room name
            or ``format``.
    """
    path, _, query_string = target.partition("?")
    head = config.prefix + "/"
    tail = "/websocket"
    if not (path.startswith(head) and path.endswith(tail) and len(path) > len(head) + len(tail)):
        raise HttpRejection(404, "Not Found")
    try:
        room = room_name_in_path(path[len(head) : -len(tail)])
    except RoomNameError as exc:
        raise HttpRejection(400, str(exc)) from None
    path = head + room + tail  # its normal form: the room's name decoded
    wire: WireFormat = "json"
    if query_string:
        requested = dict(parse_qsl(query_string, keep_blank_values=True)).get("format")
        if requested is not None:
            found = _WIRE_FORMATS.get(requested)
            if found is None:
                raise HttpRejection(400, f"format must be json or msgpack, got {requested[:20]!r}")
            wire = found
    return WebSocketTarget(room=room, path=path, query_string=query_string, wire=wire)
