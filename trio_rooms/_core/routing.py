"""Map a request target to a room before anything is created.

Shared by every transport so that every one of them accepts exactly the same URLs.
"""

from __future__ import annotations

from typing import final
from urllib.parse import parse_qsl

import attrs

from .._errors import RoomNameError
from ..codec import WireFormat
from .config import RoomsConfig, decode_unreserved, room_name_in_path

__all__ = ["HttpRejection", "WebSocketTarget", "route_websocket", "split_room_path"]

_WIRE_FORMATS: dict[str, WireFormat] = {"json": "json", "msgpack": "msgpack"}
_TAIL = "/websocket"


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


def split_room_path(prefix: str, path: str) -> tuple[str, str] | None:
    """``{prefix}/{room}/{rest}`` as the room's segment as the client sent it (for
    `room_name_in_path`) and ``/{rest}``; None for a path of another shape.

    The prefix and the rest are compared with their percent-encoded unreserved
    characters decoded (`decode_unreserved`: ``/rooms/x/%65cho`` is ``/rooms/x/echo``).
    Split first: an encoded ``/`` is never decoded, so it never splits a segment.
    """
    depth = prefix.count("/")  # the prefix's segments
    parts = path.split("/", depth + 2)  # "", the prefix's segments, the room, the rest
    if len(parts) < depth + 3 or decode_unreserved("/".join(parts[: depth + 1])) != prefix:
        return None
    return parts[depth + 1], "/" + decode_unreserved(parts[depth + 2])


def route_websocket(config: RoomsConfig, target: str) -> WebSocketTarget:
    """Resolve ``{prefix}/{room}/websocket?...``.

    Raises:
        HttpRejection: 404 for a path of another shape, 400 for an invalid room name
            or ``format``.
    """
    path, _, query_string = target.partition("?")
    split = split_room_path(config.prefix, path)
    if split is None or not split[1].endswith(_TAIL):
        raise HttpRejection(404, "Not Found")
    # All before the tail is the room: ``/rooms/a/b/websocket`` names room ``a/b`` (400).
    segment = split[0] + split[1][: -len(_TAIL)]
    if not segment:
        raise HttpRejection(404, "Not Found")
    try:
        room = room_name_in_path(segment)
    except RoomNameError as exc:
        raise HttpRejection(400, str(exc)) from None
    path = config.prefix + "/" + room + _TAIL  # its normal form: decoded
    wire: WireFormat = "json"
    if query_string:
        requested = dict(parse_qsl(query_string, keep_blank_values=True)).get("format")
        if requested is not None:
            found = _WIRE_FORMATS.get(requested)
            if found is None:
                raise HttpRejection(400, f"format must be json or msgpack, got {requested[:20]!r}")
            wire = found
    return WebSocketTarget(room=room, path=path, query_string=query_string, wire=wire)
