"""``MemoryStorage``: the Storage Protocol in a dict, for tests and single-process demos."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from typing import final

import attrs
import trio

from .storage import Commit, LoggedFrame, SessionRecord, StoredAlarm

# The check_* functions are shared by every backend, so that all of them refuse the same
# input before writing anything.
__all__ = ["MemoryStorage", "check_alarm_replacement", "check_commit", "check_limit"]

#: Records kept before the first sweep for expired ones.
_FIRST_SWEEP = 1024


@final
class MemoryStorage:
    """Keeps everything in memory: fast, and gone with the process.

    Sessions still resume after a dropped connection or a room eviction, not after a
    restart. The default storage of `open_rooms`. Records past their resume window are
    dropped as new ones arrive (each time the records have doubled since the last sweep),
    so a server that runs for weeks holds only what can still be resumed.
    """

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], SessionRecord] = {}
        self._values: dict[tuple[str, str], bytes] = {}
        self._alarms: dict[tuple[str, str], StoredAlarm] = {}
        self._frames: dict[str, deque[LoggedFrame]] = {}
        self._sweep_at = _FIRST_SWEEP

    def _store(self, record: SessionRecord) -> None:
        sessions = self._sessions
        sessions[record.room, record.session_id] = attrs.evolve(record, data=_compact(record.data))
        if len(sessions) >= self._sweep_at:
            now = time.time()
            for key in [key for key, kept in sessions.items() if kept.expires_at <= now]:
                del sessions[key]
            self._sweep_at = max(_FIRST_SWEEP, 2 * len(sessions))

    async def open(self) -> None:
        """Prepare for use."""
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Release everything."""
        await trio.lowlevel.checkpoint()

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        """The record of ``session_id`` in ``room``, or None."""
        await trio.lowlevel.checkpoint()
        return self._sessions.get((room, session_id))

    async def save_session(self, record: SessionRecord) -> None:
        """Insert or replace ``record``."""
        await trio.lowlevel.checkpoint()
        self._store(record)

    async def claim_session(
        self,
        room: str,
        session_id: str,
        *,
        token_hash: bytes,
        new_token_hash: bytes,
        expires_at: float,
        fence: int = 0,
    ) -> SessionRecord | None:
        """Move the record from ``token_hash`` to ``new_token_hash``; None if it holds another.

        One node's storage: ``fence`` is not checked.
        """
        await trio.lowlevel.checkpoint()
        # From here to the assignment there is no await: no other task can come between.
        stored = self._sessions.get((room, session_id))
        if stored is None or stored.token_hash not in (token_hash, new_token_hash):
            return None
        claimed = attrs.evolve(stored, token_hash=new_token_hash, expires_at=expires_at)
        self._sessions[room, session_id] = claimed
        return claimed

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        """Replace ``record`` if it holds ``expected_token_hash`` (or is gone); else False."""
        await trio.lowlevel.checkpoint()
        key = (record.room, record.session_id)
        stored = self._sessions.get(key)  # no await from here to the write
        if stored is not None and stored.token_hash != expected_token_hash:
            return False
        self._store(record)
        return True

    async def delete_session(self, room: str, session_id: str, *, fence: int = 0) -> None:
        """Forget a session (nothing happens if it is unknown); ``fence`` is not checked."""
        await trio.lowlevel.checkpoint()
        self._sessions.pop((room, session_id), None)

    async def get(self, room: str, key: str) -> bytes | None:
        """The value under ``key`` for ``room``, or None."""
        await trio.lowlevel.checkpoint()
        return self._values.get((room, key))

    async def put(self, room: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` for ``room``."""
        await trio.lowlevel.checkpoint()
        self._values[room, key] = _compact(value)

    async def delete(self, room: str, key: str) -> None:
        """Remove ``key`` of ``room`` (nothing happens if it is absent)."""
        await trio.lowlevel.checkpoint()
        self._values.pop((room, key), None)

    async def commit(self, commit: Commit) -> Sequence[bool]:
        """Apply ``commit``: there is no await inside, so nothing comes between its writes."""
        check_commit(commit)
        await trio.lowlevel.checkpoint()
        room = commit.room
        for key, value in commit.values.items():
            if value is None:
                self._values.pop((room, key), None)
            else:
                self._values[room, key] = _compact(value)
        for name, alarm in commit.alarms.items():
            if alarm is None:
                self._alarms.pop((room, name), None)
            else:
                self._alarms[room, name] = alarm
        if commit.frames:
            self._log(room, commit)
        written: list[bool] = []
        for write in commit.records:
            record, expected = write.record, write.expected_token_hash
            stored = self._sessions.get((record.room, record.session_id))
            ok = expected is None or stored is None or stored.token_hash == expected
            if ok:
                self._store(record)
            written.append(ok)
        return written

    def _log(self, room: str, commit: Commit) -> None:
        log = self._frames.setdefault(room, deque())
        log.extend(attrs.evolve(frame, data=_compact(frame.data)) for frame in commit.frames)
        while len(log) > max(commit.keep_frames, 1):
            log.popleft()

    async def load_frames(self, room: str, *, after: int = 0) -> Sequence[LoggedFrame]:
        """The frames of ``room``'s replay log after ``after``, oldest first."""
        await trio.lowlevel.checkpoint()
        return [frame for frame in self._frames.get(room, ()) if frame.seq > after]

    async def last_frame_seq(self, room: str) -> int:
        """The newest frame's ``seq`` in ``room``'s replay log; 0 if it has none."""
        await trio.lowlevel.checkpoint()
        log = self._frames.get(room)
        return log[-1].seq if log else 0

    async def load_alarms(self, room: str) -> Sequence[StoredAlarm]:
        """Every alarm of ``room``, earliest first."""
        await trio.lowlevel.checkpoint()
        return sorted(
            (alarm for (owner, _), alarm in self._alarms.items() if owner == room),
            key=_due,
        )

    async def next_alarms(self, limit: int) -> Sequence[StoredAlarm]:
        """The ``limit`` earliest alarms of every room."""
        check_limit(limit)
        await trio.lowlevel.checkpoint()
        return sorted(self._alarms.values(), key=_due)[:limit]

    async def replace_alarm(
        self, alarm: StoredAlarm, new: StoredAlarm | None, *, fence: int = 0
    ) -> bool:
        """Replace ``alarm`` with ``new`` if it is stored as it was; else False (no fence)."""
        check_alarm_replacement(alarm, new)
        await trio.lowlevel.checkpoint()
        key = (alarm.room, alarm.name)
        if self._alarms.get(key) != alarm:
            return False
        if new is None:
            del self._alarms[key]
        else:
            self._alarms[key] = new
        return True


#: SQLite's largest INTEGER: an attempt count beyond it cannot be stored everywhere.
_MAX_ATTEMPT = 2**63 - 1


def check_commit(commit: Commit) -> None:
    """Refuse a commit whose alarms or logged frames no backend could store as given.

    Raises:
        ValueError: an alarm is filed under another name or room, or is not storable;
            the logged frames are not in increasing ``seq`` order, or not in 1..2**63-1.
    """
    previous = 0
    for frame in commit.frames:
        if not previous < frame.seq <= _MAX_ATTEMPT:
            raise ValueError(
                f"commit of room {commit.room!r}: logged frames need increasing seq in "
                f"1..{_MAX_ATTEMPT}, got {frame.seq!r} after {previous!r}"
            )
        previous = frame.seq
    for name, alarm in commit.alarms.items():
        if alarm is None:
            continue
        if (alarm.room, alarm.name) != (commit.room, name):
            raise ValueError(
                f"commit of room {commit.room!r}: alarm {name!r} must be that room's alarm "
                f"of that name, got one of room {alarm.room!r} named {alarm.name!r}"
            )
        _check_alarm(alarm)


def check_alarm_replacement(alarm: StoredAlarm, new: StoredAlarm | None) -> None:
    """Refuse to replace ``alarm`` with another room's or name's, or an unstorable one.

    Raises:
        ValueError: ``new`` has another room or name, or is not storable.
    """
    if new is None:
        return
    if (new.room, new.name) != (alarm.room, alarm.name):
        raise ValueError(
            f"alarm {alarm.name!r} of room {alarm.room!r} can only be replaced by itself, "
            f"got alarm {new.name!r} of room {new.room!r}"
        )
    _check_alarm(new)


def check_limit(limit: int) -> None:
    """Refuse a negative ``limit`` of `MemoryStorage.next_alarms` and its twins.

    Raises:
        ValueError: ``limit`` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit!r}")


def _check_alarm(alarm: StoredAlarm) -> None:
    # NaN would not sort (SQLite stores it as NULL); an attempt past 2**63 - 1 does not
    # fit SQLite's INTEGER.
    if not math.isfinite(alarm.at):
        raise ValueError(f"alarm {alarm.name!r}: at must be a finite time, got {alarm.at!r}")
    if not 0 <= alarm.attempt <= _MAX_ATTEMPT:
        raise ValueError(
            f"alarm {alarm.name!r}: attempt must be in 0..{_MAX_ATTEMPT}, got {alarm.attempt!r}"
        )


def _due(alarm: StoredAlarm) -> tuple[float, str, str]:
    return (alarm.at, alarm.room, alarm.name)


def _compact(data: bytes) -> bytes:
    """A copy of ``data`` that holds only its own bytes.

    orjson (3.10 and later) returns bytes objects that keep the whole buffer they were
    written in (4 KiB for a ``b"null"``); kept for as long as a session lives, that
    was the largest single cost of an idle connection.
    """
    return memoryview(data).tobytes()
