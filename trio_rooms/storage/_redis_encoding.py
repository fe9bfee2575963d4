"""How `RedisStorage` stores session records, alarms and replay log frames as bytes.

No I/O here. The Lua scripts read a record's token hash inside Redis from the layout
`encode_record` makes (`FIND_TOKEN_HASH` in `._redis_scripts`), and compare alarms by
their encodings: a change here is a change there.
"""

from __future__ import annotations

import math
from typing import Final

import msgpack

from .._core.storage import LoggedFrame, ReplayCursor, SessionRecord, StoredAlarm
from .._errors import StorageError

__all__ = [
    "RECORD_VERSION",
    "decode_alarm",
    "decode_frame",
    "decode_record",
    "encode_alarm",
    "encode_record",
    "expiry_ms",
    "pxat",
    "record_tail",
    "score",
]

#: First element of a stored session record: 2 added the replay cursor (1 is still read).
RECORD_VERSION: Final = 2


def expiry_ms(expires_at: float) -> int:
    """``expires_at`` as the milliseconds of ``PXAT``; at most 0 means already expired."""
    if not math.isfinite(expires_at):
        raise ValueError(f"expires_at must be a finite time, got {expires_at!r}")
    return math.ceil(expires_at * 1000)


def pxat(expires_at: float) -> int:
    # PXAT must be positive: 1 ms after the epoch is in the past, and Redis removes the key.
    return max(expiry_ms(expires_at), 1)


def encode_alarm(alarm: StoredAlarm) -> bytes:
    # The scripts compare encodings byte for byte: one float for every equal ``at``
    # (+ 0.0 makes -0.0 the 0.0 it equals).
    return msgpack.packb([float(alarm.at) + 0.0, alarm.attempt])


def score(alarm: StoredAlarm) -> str:
    # Passed to ZADD as text: repr is exact, where Lua's tonumber/tostring would round.
    return repr(float(alarm.at))


def decode_alarm(room: str, name: bytes, raw: bytes) -> StoredAlarm:
    text = name.decode("utf-8", "surrogatepass")
    try:
        fields = msgpack.unpackb(raw)
    except (ValueError, msgpack.UnpackException) as exc:
        raise StorageError(f"alarm {text!r} of room {room!r}: unreadable alarm") from exc
    match fields:
        case [float() as at, int() as attempt]:
            return StoredAlarm(room=room, name=text, at=at, attempt=attempt)
        case _:
            raise StorageError(f"alarm {text!r} of room {room!r}: unexpected alarm")


def decode_frame(room: str, member: object) -> LoggedFrame:
    # A member is the seq (8 bytes, big-endian) and then the frame: the seq first, as a
    # sorted set's members are unique and two frames' bytes may not be (written by
    # `_redis_commit._frame_arguments`).
    if not isinstance(member, bytes) or len(member) < 8:
        raise StorageError(f"room {room!r}: unreadable replay log entry")
    return LoggedFrame(int.from_bytes(member[:8], "big"), member[8:])


def encode_record(record: SessionRecord) -> bytes:
    cursor = record.replay
    packed = b"" if cursor is None else msgpack.packb([cursor.count, cursor.seq])
    return msgpack.packb(
        [
            RECORD_VERSION,
            record.data,
            record.wire,
            packed,
            record.token_hash,
            float(record.expires_at),
        ]
    )


def record_tail(token_hash: bytes, expires_at: float) -> bytes:
    """The last fields of a record: what a claim puts after the bytes it keeps."""
    return msgpack.packb(token_hash) + msgpack.packb(float(expires_at))


def _decode_cursor(packed: bytes) -> ReplayCursor | None:
    if not packed:
        return None
    match msgpack.unpackb(packed):
        case [int() as count, int() as seq]:
            return ReplayCursor(count, seq)
        case _:
            raise ValueError("unexpected replay cursor")


def decode_record(room: str, session_id: str, raw: bytes) -> SessionRecord:
    try:
        fields = msgpack.unpackb(raw)
    except (ValueError, msgpack.UnpackException) as exc:
        raise StorageError(f"session {session_id!r} of room {room!r}: unreadable record") from exc
    match fields:
        case [1, bytes() as data, str() as wire, bytes() as token_hash, float() as expires_at]:
            return SessionRecord(
                room=room,
                session_id=session_id,
                data=data,
                wire=wire,
                token_hash=token_hash,
                expires_at=expires_at,
            )
        case [
            int() as version,
            bytes() as data,
            str() as wire,
            bytes() as packed,
            bytes() as token_hash,
            float() as expires_at,
        ] if version == RECORD_VERSION:
            try:
                cursor = _decode_cursor(packed)
            except (ValueError, msgpack.UnpackException) as exc:
                raise StorageError(
                    f"session {session_id!r} of room {room!r}: unreadable replay cursor"
                ) from exc
            return SessionRecord(
                room=room,
                session_id=session_id,
                data=data,
                wire=wire,
                token_hash=token_hash,
                expires_at=expires_at,
                replay=cursor,
            )
        case _:
            raise StorageError(f"session {session_id!r} of room {room!r}: unexpected record")
