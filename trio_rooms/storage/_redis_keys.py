"""Where `RedisStorage` keeps what: its keys in Redis. No I/O here.

Keys, with ``prefix`` ``"trio_rooms:"`` by default::

    {prefix}session:{room}:{session_id}   one session record (msgpack), expiring at its expires_at
    {prefix}state:{room}:{key}            one room value (the bytes as given), never expiring
    {prefix}alarms:{room}                 a hash of the room's alarms: name -> msgpack [at, attempt]
    {prefix}alarm-queue                   every room's alarms, a sorted set: "{room} {name}" by at
    {prefix}replay:{room}                 the room's replay log, a sorted set of frames by seq
    {prefix}fence:{room}                  the room's fence: the newest owner's fencing token

Room names cannot contain ``:`` (`trio_rooms.ROOM_NAME_PATTERN`) and the kinds are fixed,
so no session id, user key or alarm name, whatever characters it holds, can reach another
kind's or another room's key. Nor a space: a queue entry splits back at its first one, and
as a space sorts before every character of a room name, alarms due at the same time come
in the order of their room, then name, as on every backend.

The fence key is the one the leases of single ownership count their tokens in (with the
same prefix), so a new owner's acquisition already raises it; a commit raises it too,
and so does a room's start on a single node (`RedisStorage.raise_fence`, an ``INCR``).
"""

from __future__ import annotations

from typing import Final, final

import attrs

from .._core.config import ROOM_NAME_PATTERN
from .._errors import RoomNameError

__all__ = ["RedisKeys", "encode_name", "queue_entry"]

_SESSION: Final = b"session:"
_STATE: Final = b"state:"
_ALARMS: Final = b"alarms:"
_ALARM_QUEUE: Final = b"alarm-queue"
_LOG: Final = b"replay:"
_FENCE: Final = b"fence:"
#: How many rooms' commit keys a `RedisKeys` keeps; past it, it forgets them all (a bound).
_CACHED_ROOMS: Final = 4096


@final
@attrs.frozen
class RedisKeys:
    """The keys of one `RedisStorage`, each starting with ``prefix``.

    Raises `RoomNameError` for a room name that could make a key ambiguous.
    """

    prefix: bytes
    # A commit's keys by room: made once per room, not three times per commit.
    _commit_keys: dict[str, tuple[bytes, bytes, bytes, bytes]] = attrs.field(
        factory=dict[str, tuple[bytes, bytes, bytes, bytes]], init=False, eq=False, repr=False
    )

    def of_commit(self, room: str) -> tuple[bytes, bytes, bytes, bytes]:
        """The keys every commit of ``room`` may write: `alarms`, `alarm_queue`, `log`
        and `fence`."""
        cached = self._commit_keys.get(room)
        if cached is None:
            if len(self._commit_keys) >= _CACHED_ROOMS:
                self._commit_keys.clear()
            cached = (self.alarms(room), self.alarm_queue, self.log(room), self.fence(room))
            self._commit_keys[room] = cached
        return cached

    @property
    def alarm_queue(self) -> bytes:
        """Every room's alarms, by time."""
        return self.prefix + _ALARM_QUEUE

    @property
    def alarms_prefix(self) -> bytes:
        """A room's alarms key, but for the room's name (the alarm queue's script adds it)."""
        return self.prefix + _ALARMS

    def session(self, room: str, session_id: str) -> bytes:
        """The record of ``session_id`` in ``room``."""
        return self._key(_SESSION, room, session_id)

    def state(self, room: str, key: str) -> bytes:
        """The room value under ``key``."""
        return self._key(_STATE, room, key)

    def alarms(self, room: str) -> bytes:
        """The hash of ``room``'s alarms."""
        return b"%s%s%s" % (self.prefix, _ALARMS, _encode_room(room))

    def log(self, room: str) -> bytes:
        """``room``'s replay log."""
        return b"%s%s%s" % (self.prefix, _LOG, _encode_room(room))

    def fence(self, room: str) -> bytes:
        """``room``'s fence."""
        return b"%s%s%s" % (self.prefix, _FENCE, _encode_room(room))

    def _key(self, kind: bytes, room: str, name: str) -> bytes:
        return b"%s%s%s:%s" % (self.prefix, kind, _encode_room(room), encode_name(name))


def _encode_room(room: str) -> bytes:
    if ROOM_NAME_PATTERN.fullmatch(room) is None:
        raise RoomNameError(room)  # a ":" in it would make keys ambiguous
    return room.encode("ascii")


def queue_entry(room: str, name: str) -> bytes:
    """The alarm queue's entry for the alarm ``name`` of ``room``."""
    return b"%s %s" % (_encode_room(room), encode_name(name))


def encode_name(name: str) -> bytes:
    """A session id, user key or alarm name as it stands in a key or a hash field."""
    # surrogatepass: every str has exactly one encoding, even a lone surrogate.
    return name.encode("utf-8", "surrogatepass")
