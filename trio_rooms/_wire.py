"""The library's own frames: what the server sends besides the room's messages.

A user message always has a ``"type"``; a library frame never has one. It is a map of
one key that names it: ``{"error": text}`` (websocket-do's spelling), and keys that
start with ``$`` for everything else, which no attrs field name can produce::

    {"error": "expected str @ $.text"}
    {"$session": {"id": "...", "token": "...", "resumed": false}}
    {"$session": {"id": "...", "token": "...", "resumed": true, "replayed": 12}}
    {"$resync": {"reason": "the replay log no longer reaches back to frame 40"}}
    {"$error": {"rid": 7, "reason": "no such player"}}
    {"$skipped": 3}
    {"$presence": {"state": {"ann": [{"ref": "Jx3k", "meta": {"device": "phone"}}]}}}
    {"$presence": {"joins": {"bob": [{"ref": "b7Qe", "meta": {...}}]}, "leaves": {}}}

A request and its reply are user messages that carry one library key more, ``"$rid"``,
the request's id (chosen by the client): ``{"type": "getScore", "$rid": 7}`` and
``{"type": "score", "value": 3, "$rid": 7}``; a request that failed is answered with
the ``$error`` frame instead. `add_rid` and `split_rid` put the key on and take it off.

As for user messages, JSON goes in text frames and msgpack maps in binary frames.
Server, Python client and `trio_rooms.testing` all read and write them here.

A new library frame (``$resync``, ``$error``, ``$presence``) is one attrs record in
`LibraryFrame`, one case in `_content` and one parser in `_PARSERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, TypeAlias, TypeGuard, cast, final

import attrs
import msgpack
import orjson

from ._errors import DecodeError

__all__ = [
    "MAX_RID",
    "ErrorFrame",
    "LibraryFrame",
    "PresenceDiffFrame",
    "PresenceMetas",
    "PresenceStateFrame",
    "PresenceWireMeta",
    "RequestFailedFrame",
    "ResyncFrame",
    "SessionFrame",
    "SkippedFrame",
    "add_rid",
    "encode_library_frame",
    "parse_library_frame",
    "split_rid",
]

#: The largest request id: JavaScript's largest safe integer, so the TS client can count.
MAX_RID = 2**53 - 1


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
    whether this connection resumed one (else the session is new). ``replayed`` is sent
    only to a client that said how many frames it has seen (``&seen=N``) to a room that
    keeps a replay log: how many missed frames follow, before any new one.
    """

    id: str
    token: str
    resumed: bool
    replayed: int | None = None


@final
@attrs.frozen
class ResyncFrame:
    """``{"$resync": {"reason": ...}}``: the frames a resumed client missed are not replayed.

    Sent right after ``$session`` (``replayed: 0``) when the replay log no longer
    reaches back to what the client had seen; what the session sends next (its
    ``on_resync`` snapshot) brings it up to date instead.
    """

    reason: str


@final
@attrs.frozen
class RequestFailedFrame:
    """``{"$error": {"rid": 7, "reason": ...}}``: the request ``rid`` got no reply.

    Its handler raised, it named no request the session answers, or too many of the
    client's requests were in flight; the connection stays open.
    """

    rid: int
    reason: str


@final
@attrs.frozen
class SkippedFrame:
    """``{"$skipped": 3}``: frames meant for this client that a delivery policy dropped.

    Sent only to a client that counts frames (``&seen=N``) to resume with a replay,
    where the dropped frames would have been: it counts them as received, so its count
    stays the server's.
    """

    count: int


@final
@attrs.frozen
class PresenceWireMeta:
    """One presence of a key on the wire: ``{"ref": ..., "meta": {...}}``.

    ``ref`` names this presence (one session's join) among all of the room's, on every
    node; an update gives it a new one. ``meta`` is the room's metadata class as a
    decoded wire object (a map), in the frame's own wire format.
    """

    ref: str
    meta: object


#: Presences by key, each key's in the order they joined.
PresenceMetas: TypeAlias = Mapping[str, Sequence[PresenceWireMeta]]


@final
@attrs.frozen
class PresenceStateFrame:
    """``{"$presence": {"state": {key: [meta, ...]}}}``: every presence of the room.

    Sent when a session subscribes to presence (and so again on every new connection,
    a resumed one included); the diffs that follow apply to it.
    """

    state: PresenceMetas


@final
@attrs.frozen
class PresenceDiffFrame:
    """``{"$presence": {"joins": {...}, "leaves": {...}}}``: presences that came and went.

    Apply ``leaves`` (by ``ref``) and then ``joins``; an update is the leave of the
    old ``ref`` and the join of the new one, in one diff (as Phoenix's
    ``presence_diff``). A key whose last presence left is gone.
    """

    joins: PresenceMetas
    leaves: PresenceMetas


LibraryFrame: TypeAlias = (
    ErrorFrame
    | SessionFrame
    | ResyncFrame
    | RequestFailedFrame
    | SkippedFrame
    | PresenceStateFrame
    | PresenceDiffFrame
)

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
            info: dict[str, object] = {
                "id": frame.id,
                "token": frame.token,
                "resumed": frame.resumed,
            }
            if frame.replayed is not None:
                info["replayed"] = frame.replayed
            return {"$session": info}
        case ResyncFrame():
            return {"$resync": {"reason": frame.reason}}
        case RequestFailedFrame():
            return {"$error": {"rid": frame.rid, "reason": frame.reason}}
        case SkippedFrame():
            return {"$skipped": frame.count}
        case PresenceStateFrame():
            return {"$presence": {"state": _metas_content(frame.state)}}
        case PresenceDiffFrame():
            joins, leaves = _metas_content(frame.joins), _metas_content(frame.leaves)
            return {"$presence": {"joins": joins, "leaves": leaves}}


def _metas_content(metas: PresenceMetas) -> dict[str, list[dict[str, object]]]:
    return {
        key: [{"ref": meta.ref, "meta": meta.meta} for meta in presences]
        for key, presences in metas.items()
    }


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
    if fields.keys() - {"replayed"} != {"id", "token", "resumed"}:
        keys = ", ".join(sorted(map(repr, fields))) or "none"
        raise _ShapeError(
            f"'$session' to have the keys 'id', 'resumed', 'token' (and 'replayed'), got {keys}"
        )
    replayed = fields.get("replayed")
    if replayed is not None and (
        isinstance(replayed, bool) or not isinstance(replayed, int) or replayed < 0
    ):
        raise _ShapeError(f"'$session.replayed' to be a count, got {_kind(replayed)}")
    session_id, token, resumed = fields["id"], fields["token"], fields["resumed"]
    if not isinstance(session_id, str):
        raise _ShapeError(f"'$session.id' to be a string, got {_kind(session_id)}")
    if not isinstance(token, str):
        raise _ShapeError(f"'$session.token' to be a string, got {_kind(token)}")
    if not isinstance(resumed, bool):
        raise _ShapeError(f"'$session.resumed' to be a boolean, got {_kind(resumed)}")
    return SessionFrame(id=session_id, token=token, resumed=resumed, replayed=replayed)


def _parse_resync(value: object) -> ResyncFrame:
    if not isinstance(value, dict):
        raise _ShapeError(f"'$resync' to be a map, got {_kind(value)}")
    fields = cast("dict[object, object]", value)
    if fields.keys() != {"reason"}:
        keys = ", ".join(sorted(map(repr, fields))) or "none"
        raise _ShapeError(f"'$resync' to have the key 'reason', got {keys}")
    reason = fields["reason"]
    if not isinstance(reason, str):
        raise _ShapeError(f"'$resync.reason' to be a string, got {_kind(reason)}")
    return ResyncFrame(reason)


def _parse_failed(value: object) -> RequestFailedFrame:
    if not isinstance(value, dict):
        raise _ShapeError(f"'$error' to be a map, got {_kind(value)}")
    fields = cast("dict[object, object]", value)
    if fields.keys() != {"rid", "reason"}:
        keys = ", ".join(sorted(map(repr, fields))) or "none"
        raise _ShapeError(f"'$error' to have the keys 'reason', 'rid', got {keys}")
    rid, reason = fields["rid"], fields["reason"]
    if not _is_rid(rid):
        raise _ShapeError(f"'$error.rid' to be a request id, got {_kind(rid)}")
    if not isinstance(reason, str):
        raise _ShapeError(f"'$error.reason' to be a string, got {_kind(reason)}")
    return RequestFailedFrame(rid, reason)


def _parse_skipped(value: object) -> SkippedFrame:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _ShapeError(f"'$skipped' to be a positive count, got {_kind(value)}")
    return SkippedFrame(value)


def _parse_presence(value: object) -> PresenceStateFrame | PresenceDiffFrame:
    if not isinstance(value, dict):
        raise _ShapeError(f"'$presence' to be a map, got {_kind(value)}")
    fields = cast("dict[object, object]", value)
    if fields.keys() == {"state"}:
        return PresenceStateFrame(_parse_metas("state", fields["state"]))
    if fields.keys() == {"joins", "leaves"}:
        joins = _parse_metas("joins", fields["joins"])
        return PresenceDiffFrame(joins, _parse_metas("leaves", fields["leaves"]))
    keys = ", ".join(sorted(map(repr, fields))) or "none"
    raise _ShapeError(
        f"'$presence' to have the key 'state', or the keys 'joins', 'leaves', got {keys}"
    )


def _parse_metas(name: str, value: object) -> PresenceMetas:
    where = f"'$presence.{name}'"
    if not isinstance(value, dict):
        raise _ShapeError(f"{where} to be a map of keys to lists, got {_kind(value)}")
    metas: dict[str, list[PresenceWireMeta]] = {}
    for key, presences in cast("dict[object, object]", value).items():
        if not isinstance(key, str):
            raise _ShapeError(f"{where} keys to be strings, got {_kind(key)}")
        if not isinstance(presences, list):
            raise _ShapeError(f"{where}[{key!r}] to be a list, got {_kind(presences)}")
        parsed = metas[key] = []
        for item in cast("list[object]", presences):
            fields = cast("dict[object, object]", item) if isinstance(item, dict) else None
            if fields is None or fields.keys() != {"ref", "meta"}:
                raise _ShapeError(f"{where}[{key!r}] items to be maps of 'ref' and 'meta'")
            ref = fields["ref"]
            if not isinstance(ref, str):
                raise _ShapeError(f"{where}[{key!r}] refs to be strings, got {_kind(ref)}")
            parsed.append(PresenceWireMeta(ref, fields["meta"]))
    return metas


def _is_rid(value: object) -> TypeGuard[int]:
    return type(value) is int and 0 <= value <= MAX_RID


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


#: Each library key's parser, which raises `_ShapeError` for a value not of its shape.
_PARSERS: dict[str, Callable[[object], LibraryFrame]] = {
    "error": _parse_error,
    "$session": _parse_session,
    "$resync": _parse_resync,
    "$error": _parse_failed,
    "$skipped": _parse_skipped,
    "$presence": _parse_presence,
}

# ------------------------------------------------------------------------ requests

_RID = "$rid"
# How "$rid" looks inside a frame: a cheap test that lets every other frame through
# untouched (a hit may still be a string value; `split_rid` then finds no key).
_RID_JSON = '"$rid"'
_RID_MSGPACK = b"$rid"


def add_rid(wire: _Wire, payload: bytes, rid: int) -> bytes:
    """``payload``, a user message as a codec encoded it, with ``"$rid": rid`` added last."""
    if wire == "json":
        # A message is a non-empty object (it has "type"): drop its "}", append the key.
        return b"%s,%s:%d}" % (payload[:-1], _RID_JSON.encode(), rid)
    # A msgpack map: its header counts its pairs, so write a header for one more.
    first = payload[0]
    if 0x80 <= first <= 0x8F:
        count, body = first & 0x0F, payload[1:]
    elif first == 0xDE:
        count, body = int.from_bytes(payload[1:3]), payload[3:]
    elif first == 0xDF:
        count, body = int.from_bytes(payload[1:5]), payload[5:]
    else:
        raise ValueError(f"expected a msgpack map, got the type byte {first:#x}")
    count += 1
    if count <= 0x0F:
        header = bytes((0x80 | count,))
    elif count <= 0xFFFF:
        header = b"\xde" + count.to_bytes(2)
    else:
        header = b"\xdf" + count.to_bytes(4)
    return header + body + msgpack.packb(_RID) + msgpack.packb(rid)


def split_rid(data: str | bytes) -> tuple[int | None, str | bytes] | None:
    """``data``'s request id and the frame without it, or ``None`` if it carries none.

    ``data`` is a user message (JSON if text, msgpack if binary). The id is ``None``
    when the key is there but its value is not an id (0 to `MAX_RID`).
    """
    if isinstance(data, str):
        if _RID_JSON not in data:
            return None
    elif _RID_MSGPACK not in data:
        return None
    content = _load(data)
    if content is None or _RID not in content:
        return None
    fields = dict(content)
    rid = fields.pop(_RID)
    rest = orjson.dumps(fields).decode() if isinstance(data, str) else msgpack.packb(fields)
    return (rid if _is_rid(rid) else None), rest
