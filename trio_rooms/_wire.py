"""The library's own frames: what the server sends besides the room's messages.

A user message always has a ``"type"``; a library frame never has one. It is a map of
one key that names it: ``{"error": text}`` (websocket-do's spelling), and keys that
start with ``$`` for everything else, which no attrs field name can produce::

    {"error": "expected str @ $.text"}
    {"$session": {"id": "...", "token": "...", "resumed": false}}

As for user messages, JSON goes in text frames and msgpack maps in binary frames.
Server, Python client and `trio_rooms.testing` all read and write them here.

A new library frame (``$resync``, ``$rid``, presence diffs) is one attrs record in
`LibraryFrame`, one case in `_content` and one parser in `_PARSERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, TypeAlias, cast, final

import attrs
import msgpack
import orjson

from ._errors import DecodeError

__all__ = [
    "ErrorFrame",
    "LibraryFrame",
    "SessionFrame",
    "encode_library_frame",
    "parse_library_frame",
]


@final
@attrs.frozen
class ErrorFrame:
    """``{"error": text}``: the server could not take a frame (the connection stays open)."""

    text: str


@final
@attrs.frozen
class SessionFrame:
    """``{"$session": {...}}``: the first frame of a connection that asked for ``?resume=``.

    ``token`` resumes the session ``id`` once, on a later connection; ``resumed`` says
    whether this connection resumed one (else the session is new).
    """

    id: str
    token: str
    resumed: bool


LibraryFrame: TypeAlias = ErrorFrame | SessionFrame

# Spelled out rather than imported from `codec` (the same type): `_wire` sits below it.
_Wire: TypeAlias = Literal["json", "msgpack"]


def encode_library_frame(wire: _Wire, frame: LibraryFrame) -> bytes:
    """``frame`` as a frame's payload: JSON (for a text frame) or msgpack (binary)."""
    content = _content(frame)
    if wire == "json":
        return orjson.dumps(content)
    return msgpack.packb(content)


def _content(frame: LibraryFrame) -> dict[str, object]:
    # Key order is wire order: clients may compare bytes.
    match frame:
        case ErrorFrame():
            return {"error": frame.text}
        case SessionFrame():
            return {"$session": {"id": frame.id, "token": frame.token, "resumed": frame.resumed}}


def parse_library_frame(data: str | bytes) -> LibraryFrame | None:
    """The library frame in ``data`` (JSON if text, msgpack if binary), or ``None``.

    ``None`` means ``data`` is no library frame at all: not JSON or msgpack, not a map,
    a map with a ``"type"`` (a user message), or a map without an ``"error"`` or
    ``$`` key. A map that is a library frame by its key is parsed strictly, as the
    codecs parse user messages: one key, known, with exactly its fields.

    Raises:
        DecodeError: ``data`` is a library frame by its key but not of that frame's
            shape; ``frame`` is ``data``.
    """
    content = _load(data)
    if content is None or "type" in content or not any(map(_is_library_key, content)):
        return None
    if len(content) != 1:
        keys = ", ".join(sorted(map(repr, content)))
        raise DecodeError(f"expected a library frame of one key, got the keys {keys}", frame=data)
    ((key, value),) = content.items()
    parse = _PARSERS.get(cast("str", key))  # the one key is a library key: a str
    if parse is None:
        known = ", ".join(map(repr, _PARSERS))
        raise DecodeError(f"expected one of the library frames {known}, got {key!r}", frame=data)
    try:
        return parse(value)
    except _ShapeError as exc:
        raise DecodeError(f"expected {exc}", frame=data) from None


def _load(data: str | bytes) -> Mapping[object, object] | None:
    try:
        # bytes and str never reach the wrong parser: that is the frame's kind.
        content: object = orjson.loads(data) if isinstance(data, str) else msgpack.unpackb(data)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if not isinstance(content, dict):
        return None
    return cast("dict[object, object]", content)


def _is_library_key(key: object) -> bool:
    return isinstance(key, str) and (key == "error" or key.startswith("$"))


class _ShapeError(Exception):
    """What a library frame's value should have been (its `DecodeError` is raised above)."""


def _parse_error(value: object) -> ErrorFrame:
    if not isinstance(value, str):
        raise _ShapeError(f"'error' to be a string, got {_kind(value)}")
    return ErrorFrame(value)


def _parse_session(value: object) -> SessionFrame:
    if not isinstance(value, dict):
        raise _ShapeError(f"'$session' to be a map, got {_kind(value)}")
    fields = cast("dict[object, object]", value)
    if fields.keys() != {"id", "token", "resumed"}:
        keys = ", ".join(sorted(map(repr, fields))) or "none"
        raise _ShapeError(f"'$session' to have the keys 'id', 'resumed', 'token', got {keys}")
    session_id, token, resumed = fields["id"], fields["token"], fields["resumed"]
    if not isinstance(session_id, str):
        raise _ShapeError(f"'$session.id' to be a string, got {_kind(session_id)}")
    if not isinstance(token, str):
        raise _ShapeError(f"'$session.token' to be a string, got {_kind(token)}")
    if not isinstance(resumed, bool):
        raise _ShapeError(f"'$session.resumed' to be a boolean, got {_kind(resumed)}")
    return SessionFrame(id=session_id, token=token, resumed=resumed)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


#: Each library key's parser, which raises `_ShapeError` for a value not of its shape.
_PARSERS: dict[str, Callable[[object], LibraryFrame]] = {
    "error": _parse_error,
    "$session": _parse_session,
}
