"""``SqliteStorage``: durable storage in one SQLite file (WAL), the embedded default.

sqlite3 blocks, so every call runs in a worker thread (`trio.to_thread`). Writes are
group-committed: writes that arrive while a commit is running wait for the next one
and go in together, in one transaction, so 100 sessions calling ``update()`` at once
cost a few fsyncs, not 100. A write returns only after its transaction committed.
Each caller's write (one statement, or every statement of a `Commit`) runs inside its
own SAVEPOINT of that transaction, so a write that fails rolls back alone.

Several processes may open one file (``hypercorn -w 2``, a new server started before the
old one drained): each room has a fence in the file, which `SqliteStorage.raise_fence`
raises when a room starts, and every fenced write checks in its own transaction, so
only the process that started the room last writes it (see `FencedStorage`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal, final

import attrs
import trio

from .._core.memory import check_alarm_replacement, check_commit, check_limit
from .._core.storage import Commit, LoggedFrame, ReplayCursor, SessionRecord, StoredAlarm
from .._errors import OwnershipLostError, StorageError

__all__ = ["SqliteStorage"]

SCHEMA_VERSION: Final = 4

_ALARMS: Final = (
    """CREATE TABLE IF NOT EXISTS alarms (
        room TEXT NOT NULL,
        name TEXT NOT NULL,
        at REAL NOT NULL,
        attempt INTEGER NOT NULL,
        PRIMARY KEY (room, name)
    ) WITHOUT ROWID""",
    # In next_alarms' order, so that it reads the first rows of the index and sorts nothing.
    "CREATE INDEX IF NOT EXISTS alarms_by_time ON alarms (at, room, name)",
)

# Schema 3: the replay log, and each session's place in it (NULL: unknown).
_REPLAY_LOG: Final = (
    """CREATE TABLE IF NOT EXISTS replay_log (
        room TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (room, seq)
    ) WITHOUT ROWID""",
)
_REPLAY_CURSORS: Final = (
    "ALTER TABLE sessions ADD COLUMN replay_count INTEGER",
    "ALTER TABLE sessions ADD COLUMN replay_seq INTEGER",
)

# Schema 4: each room's fence, the newest writer's token (`FencedStorage`).
_FENCES: Final = (
    """CREATE TABLE IF NOT EXISTS fences (
        room TEXT NOT NULL PRIMARY KEY,
        fence INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS sessions (
        room TEXT NOT NULL,
        session_id TEXT NOT NULL,
        data BLOB NOT NULL,
        wire TEXT NOT NULL,
        token_hash BLOB NOT NULL,
        expires_at REAL NOT NULL,
        replay_count INTEGER,
        replay_seq INTEGER,
        PRIMARY KEY (room, session_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS room_state (
        room TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (room, key)
    ) WITHOUT ROWID""",
    *_ALARMS,
    *_REPLAY_LOG,
    *_FENCES,
)

#: What brings a file of each older schema version to `SCHEMA_VERSION` (0: a new file).
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    0: _SCHEMA,
    1: (*_ALARMS, *_REPLAY_LOG, *_REPLAY_CURSORS, *_FENCES),
    2: (*_REPLAY_LOG, *_REPLAY_CURSORS, *_FENCES),
    3: _FENCES,
}

_LOAD_SESSION: Final = (
    "SELECT data, wire, token_hash, expires_at, replay_count, replay_seq FROM sessions "
    "WHERE room = ? AND session_id = ?"
)
_SAVE_SESSION: Final = (
    "INSERT OR REPLACE INTO sessions "
    "(room, session_id, data, wire, token_hash, expires_at, replay_count, replay_seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# The two compare-and-set writes of a resumable session's record (see Storage): each
# is one statement, so its comparison and its write are one step of the transaction.
_CLAIM_SESSION: Final = (
    "UPDATE sessions SET token_hash = ?1, expires_at = ?2 "
    "WHERE room = ?3 AND session_id = ?4 AND token_hash IN (?5, ?1)"
)
_REPLACE_SESSION: Final = (
    "INSERT INTO sessions "
    "(room, session_id, data, wire, token_hash, expires_at, replay_count, replay_seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room, session_id) DO UPDATE SET "
    "data = excluded.data, wire = excluded.wire, token_hash = excluded.token_hash, "
    "expires_at = excluded.expires_at, replay_count = excluded.replay_count, "
    "replay_seq = excluded.replay_seq WHERE sessions.token_hash = ?"
)
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE room = ? AND session_id = ?"
_GET: Final = "SELECT value FROM room_state WHERE room = ? AND key = ?"
_PUT: Final = "INSERT OR REPLACE INTO room_state (room, key, value) VALUES (?, ?, ?)"
_DELETE: Final = "DELETE FROM room_state WHERE room = ? AND key = ?"
_PUT_ROWS: Final = "INSERT OR REPLACE INTO room_state (room, key, value) VALUES "
_DELETE_KEYS: Final = "DELETE FROM room_state WHERE room = ? AND key IN ("
_SET_ALARM: Final = "INSERT OR REPLACE INTO alarms (room, name, at, attempt) VALUES (?, ?, ?, ?)"
_CANCEL_ALARM: Final = "DELETE FROM alarms WHERE room = ? AND name = ?"
# replace_alarm's two compare-and-sets, one statement each, like the session ones.
_REPLACE_ALARM: Final = (
    "UPDATE alarms SET at = ?, attempt = ? WHERE room = ? AND name = ? AND at = ? AND attempt = ?"
)
_DELETE_ALARM: Final = "DELETE FROM alarms WHERE room = ? AND name = ? AND at = ? AND attempt = ?"
_LOAD_ALARMS: Final = "SELECT name, at, attempt FROM alarms WHERE room = ? ORDER BY at, name"
_NEXT_ALARMS: Final = "SELECT room, name, at, attempt FROM alarms ORDER BY at, room, name LIMIT ?"
_LOG_FRAMES: Final = "INSERT OR IGNORE INTO replay_log (room, seq, data) VALUES "
# Keeps the newest ?2 frames (at least one: the newest says where the log ends).
_TRIM_LOG: Final = (
    "DELETE FROM replay_log WHERE room = ?1 AND seq < ("
    "SELECT seq FROM replay_log WHERE room = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2 - 1)"
)
_LOAD_FRAMES: Final = "SELECT seq, data FROM replay_log WHERE room = ? AND seq > ? ORDER BY seq"
_LAST_FRAME: Final = "SELECT MAX(seq) FROM replay_log WHERE room = ?"
_RAISE_FENCE: Final = (
    "INSERT INTO fences (room, fence) VALUES (?1, 1) "
    "ON CONFLICT (room) DO UPDATE SET fence = fence + 1"
)
_READ_FENCE: Final = "SELECT fence FROM fences WHERE room = ?"
_SET_FENCE: Final = (
    "INSERT INTO fences (room, fence) VALUES (?1, ?2) "
    "ON CONFLICT (room) DO UPDATE SET fence = excluded.fence"
)

_Params = tuple[object, ...]


@attrs.define
class _Write:
    """One caller's statements: they land together, in one group commit, or not at all."""

    statements: Sequence[tuple[str, _Params]]
    #: A query run right after the last statement in the same transaction, if it changed a row.
    then: tuple[str, _Params] | None = None
    #: The room and fencing token the statements are refused below (`_fence_check`).
    fence: tuple[str, int] | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None
    #: Rows each statement changed, and the row ``then`` read, once committed.
    rowcounts: list[int] = attrs.field(factory=list[int])
    row: Sequence[object] | None = None


@final
class SqliteStorage:
    """Session records and room state in the SQLite file at ``path``.

    Durability: an ``update()`` (or ``room.storage.put``) that returned survives a
    crash of the process with any setting, and a power loss with
    ``synchronous="FULL"`` (the default; ``"NORMAL"`` is faster and may lose the last
    commits on power loss, never corrupts).

    Several processes may open one file; without a backplane, each room is written by
    one of them, the one that started it last (`raise_fence`): an older copy's writes
    are refused with `OwnershipLostError` and its room stops (`FencedStorage`).

    Args:
        path: The database file; created with its schema on first use.
        synchronous: SQLite's ``PRAGMA synchronous`` for the WAL.
        busy_timeout: Seconds a statement waits while another connection to the file
            (another process, say) holds its write lock, before it fails with a
            `StorageError` ("database is locked"); SQLite's ``PRAGMA busy_timeout``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout: float = 5.0,
    ) -> None:
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, not {busy_timeout!r}")
        self._path = os.fspath(path)
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = trio.Lock()
        self._pending: list[_Write] = []
        self._flushing = False
        #: The file opened, as ``(st_dev, st_ino)``: checked after every commit.
        self._identity: tuple[int, int] | None = None

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    async def open(self) -> None:
        """Open the file (creating the schema if needed) with one writer and one reader connection.

        Raises:
            StorageError: the file cannot be opened, or has a schema of another version.
        """
        try:
            self._writer = await trio.to_thread.run_sync(self._connect, True)
            self._reader = await trio.to_thread.run_sync(self._connect, False)
            if self._path not in ("", ":memory:"):  # SQLite's own, with no file to check
                self._identity = _identity(self._path)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open SQLite storage {self._path!r}: {exc}") from exc

    def _connect(self, create: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {round(self._busy_timeout * 1000)}")
        if create:
            db.execute("PRAGMA journal_mode = WAL")
            try:
                self._migrate(db)
            except BaseException:
                db.close()
                raise
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Create the schema, or bring an older one up to `SCHEMA_VERSION`, in place."""
        # The version is read inside the write transaction: of two processes opening an
        # old file at once, the second sees what the first migrated.
        db.execute("BEGIN IMMEDIATE")
        try:
            version: int = db.execute("PRAGMA user_version").fetchone()[0]
            for statement in self._migration(version):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _migration(self, version: int) -> Sequence[str]:
        """The statements that bring a file of schema ``version`` to `SCHEMA_VERSION`."""
        if version == SCHEMA_VERSION:
            return ()
        if version not in _MIGRATIONS:
            raise StorageError(
                f"{self._path!r} has schema version {version}; "
                f"this trio_rooms reads versions up to {SCHEMA_VERSION}"
            )
        return _MIGRATIONS[version]

    async def aclose(self) -> None:
        """Wait for pending writes, then close the connections."""
        with trio.CancelScope(shield=True):
            while self._flushing:
                await self._write(("SELECT 1", ()))
            for db in (self._writer, self._reader):
                if db is not None:
                    await trio.to_thread.run_sync(db.close)
        self._writer = self._reader = None

    # ------------------------------------------------------------------ sessions

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        """The record of ``session_id`` in ``room``, or None."""
        row = await self._read_one(_LOAD_SESSION, (room, session_id))
        return None if row is None else _record(room, session_id, row)

    async def save_session(self, record: SessionRecord) -> None:
        """Insert or replace ``record``."""
        await self._write(_save_session(record))

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

        One ``UPDATE ... WHERE token_hash IN (old, new)`` in the group-committed
        transaction (its rowcount says who won); the record is read back in that same
        transaction, which checks ``fence`` first.

        Raises:
            OwnershipLostError: ``fence`` is below the room's fence; nothing changed.
        """
        key = (room, session_id)
        write = await self._write(
            (_CLAIM_SESSION, (new_token_hash, expires_at, *key, token_hash)),
            then=(_LOAD_SESSION, key),
            fence=_fence(room, fence),
        )
        if write.rowcounts != [1] or write.row is None:
            return None
        return _record(room, session_id, write.row)

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        """Replace ``record`` if it holds ``expected_token_hash`` (or is gone); else False."""
        write = await self._write(_replace_session(record, expected_token_hash))
        return write.rowcounts == [1]

    async def delete_session(self, room: str, session_id: str, *, fence: int = 0) -> None:
        """Forget a session (nothing happens if it is unknown).

        Raises:
            OwnershipLostError: ``fence`` is below the room's fence; nothing changed.
        """
        await self._write((_DELETE_SESSION, (room, session_id)), fence=_fence(room, fence))

    # ---------------------------------------------------------------- room state

    async def get(self, room: str, key: str) -> bytes | None:
        """The value under ``key`` for ``room``, or None."""
        row = await self._read_one(_GET, (room, key))
        if row is None:
            return None
        value = row[0]
        assert isinstance(value, bytes)
        return value

    async def put(self, room: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` for ``room``."""
        await self._write((_PUT, (room, key, value)))

    async def delete(self, room: str, key: str) -> None:
        """Remove ``key`` of ``room`` (nothing happens if it is absent)."""
        await self._write((_DELETE, (room, key)))

    # ------------------------------------------------------------ commits, alarms

    async def commit(self, commit: Commit) -> Sequence[bool]:
        """Write ``commit`` in one SAVEPOINT of a group commit: all of it, or nothing.

        A fenced commit (``commit.fence`` above 0) is compared with the room's fence in
        the same savepoint, before its first statement; below it, nothing is written.

        Raises:
            OwnershipLostError: ``commit.fence`` is below the room's fence: another
                process started the room since (`raise_fence`).
            StorageError: SQLite refused one of its statements; none of them was kept.
            ValueError: an alarm is not one of this room's, by that name, at a finite time.
        """
        check_commit(commit)
        room = commit.room
        statements = _value_statements(room, commit.values)
        for name, alarm in commit.alarms.items():
            statements.append(
                (_CANCEL_ALARM, (room, name))
                if alarm is None
                else (_SET_ALARM, (room, name, alarm.at, alarm.attempt))
            )
        statements += _frame_statements(room, commit)
        for write in commit.records:
            expected = write.expected_token_hash
            statements.append(
                _save_session(write.record)
                if expected is None
                else _replace_session(write.record, expected)
            )
        done = await self._write(*statements, fence=_fence(room, commit.fence))
        # INSERT OR REPLACE and an upsert whose WHERE held both change one row.
        return [n == 1 for n in done.rowcounts[len(done.rowcounts) - len(commit.records) :]]

    async def load_frames(self, room: str, *, after: int = 0) -> Sequence[LoggedFrame]:
        """The frames of ``room``'s replay log after ``after``, oldest first."""
        rows = await self._read_all(_LOAD_FRAMES, (room, after))
        return [_logged_frame(*row) for row in rows]

    async def last_frame_seq(self, room: str) -> int:
        """The newest frame's ``seq`` in ``room``'s replay log; 0 if it has none."""
        row = await self._read_one(_LAST_FRAME, (room,))
        seq = row[0] if row is not None else None
        assert seq is None or isinstance(seq, int)
        return seq or 0

    async def load_alarms(self, room: str) -> Sequence[StoredAlarm]:
        """Every alarm of ``room``, earliest first."""
        rows = await self._read_all(_LOAD_ALARMS, (room,))
        return [_alarm(room, *row) for row in rows]

    async def next_alarms(self, limit: int) -> Sequence[StoredAlarm]:
        """The ``limit`` earliest alarms of every room, earliest first (read from an index)."""
        check_limit(limit)
        rows = await self._read_all(_NEXT_ALARMS, (limit,))
        return [_alarm(*row) for row in rows]

    async def replace_alarm(
        self, alarm: StoredAlarm, new: StoredAlarm | None, *, fence: int = 0
    ) -> bool:
        """Replace ``alarm`` with ``new`` (None deletes it) if it is stored as it was; else False.

        One statement that compares and writes, in the group-committed transaction,
        which checks ``fence`` first.

        Raises:
            OwnershipLostError: ``fence`` is below the room's fence; nothing changed.
        """
        check_alarm_replacement(alarm, new)
        stored = (alarm.room, alarm.name, alarm.at, alarm.attempt)
        fenced = _fence(alarm.room, fence)
        if new is None:
            write = await self._write((_DELETE_ALARM, stored), fence=fenced)
        else:
            statement = (_REPLACE_ALARM, (new.at, new.attempt, *stored))
            write = await self._write(statement, fence=fenced)
        return write.rowcounts == [1]

    async def raise_fence(self, room: str) -> int:
        """Raise ``room``'s fence by one and return it (`FencedStorage`), durably.

        One upsert in the group-committed transaction, the fence read back in it: of
        processes raising it at once, each gets a fence of its own.
        """
        write = await self._write((_RAISE_FENCE, (room,)), then=(_READ_FENCE, (room,)))
        row = write.row
        assert row is not None  # the upsert always changes its row
        fence = row[0]
        assert isinstance(fence, int)
        return fence

    # ----------------------------------------------------------------- internals

    async def _read_one(self, sql: str, params: _Params) -> Sequence[object] | None:
        rows = await self._read(_fetch_one, sql, params)
        return rows[0] if rows else None

    async def _read_all(self, sql: str, params: _Params) -> Sequence[Sequence[object]]:
        return await self._read(_fetch_all, sql, params)

    async def _read(
        self,
        fetch: Callable[[sqlite3.Connection, str, _Params], Sequence[Sequence[object]]],
        sql: str,
        params: _Params,
    ) -> Sequence[Sequence[object]]:
        db = self._reader
        if db is None:
            raise StorageError("SQLite storage is not open")
        async with self._read_lock:
            try:
                return await trio.to_thread.run_sync(fetch, db, sql, params)
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite read failed: {exc}{self._locked(exc)}") from exc

    def _locked(self, error: sqlite3.Error) -> str:
        """What to add to ``error``'s message if it is SQLite's busy timeout running out."""
        # The extended code's low byte is the primary one; Python's own errors have none.
        code: int = getattr(error, "sqlite_errorcode", 0)
        if code & 0xFF != sqlite3.SQLITE_BUSY:
            return ""
        return (
            f" (another connection held {self._path!r}'s lock for longer than"
            f" busy_timeout={self._busy_timeout:g} s)"
        )

    async def _write(
        self,
        *statements: tuple[str, _Params],
        then: tuple[str, _Params] | None = None,
        fence: tuple[str, int] | None = None,
    ) -> _Write:
        """Commit ``statements`` together, with whatever else is waiting to be written.

        ``fence``: the room and token below whose fence nothing of it is written.
        """
        if self._writer is None:
            raise StorageError("SQLite storage is not open")
        write = _Write(statements, then, fence)
        self._pending.append(write)
        if self._flushing:
            await write.done.wait()  # the running flush takes it in its next transaction
        else:
            await self._flush()
        error = write.error
        if isinstance(error, sqlite3.Error):
            raise StorageError(f"SQLite write failed: {error}{self._locked(error)}") from error
        if error is not None:
            raise error  # not SQLite's: a value it cannot bind, say; raised to its writer
        return write

    async def _flush(self) -> None:
        # Shielded: a write that started must finish, or its waiters would hang and a
        # caller could not tell whether it is durable.
        self._flushing = True
        try:
            with trio.CancelScope(shield=True):
                while self._pending:
                    batch, self._pending = self._pending, []
                    db = self._writer
                    assert db is not None
                    try:
                        await trio.to_thread.run_sync(self._commit, db, batch)
                    except _FileGone as gone:
                        for write in batch:
                            write.error = gone.error
                    except sqlite3.Error as exc:
                        # The transaction failed as a whole (a failing write only rolls
                        # back to its savepoint): disk full, I/O error. Each write again on
                        # its own, so that one cause fails only its own write.
                        if len(batch) == 1:
                            batch[0].error = exc
                        else:
                            for write in batch:
                                try:
                                    await trio.to_thread.run_sync(self._commit, db, [write])
                                except _FileGone as gone:
                                    write.error = gone.error
                                except sqlite3.Error as single:
                                    write.error = single
                    for write in batch:
                        write.done.set()
        finally:
            self._flushing = False

    def _commit(self, db: sqlite3.Connection, batch: list[_Write]) -> None:
        """`_commit`, then check that it went to the file at our path (worker thread).

        SQLite writes on to a file deleted (or replaced) while it is open, and
        everything written there is lost with the process: a write is acknowledged only
        if the path still names the file opened, after the commit.
        """
        _commit(db, batch)
        if self._identity is None:
            return
        try:
            same = _identity(self._path) == self._identity
        except OSError:
            same = False
        if not same:
            raise _FileGone(
                StorageError(
                    f"SQLite file {self._path!r} was deleted or replaced while open: "
                    "nothing written since is stored"
                )
            )


class _FileGone(Exception):
    """The committed writes are not in the file at the storage's path: none is durable."""

    def __init__(self, error: StorageError) -> None:
        super().__init__(error)
        self.error = error


def _identity(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _fetch_one(db: sqlite3.Connection, sql: str, params: _Params) -> Sequence[Sequence[object]]:
    row: Sequence[object] | None = db.execute(sql, params).fetchone()
    return [] if row is None else [row]


def _fetch_all(db: sqlite3.Connection, sql: str, params: _Params) -> Sequence[Sequence[object]]:
    rows: list[Sequence[object]] = db.execute(sql, params).fetchall()
    return rows


def _record_params(r: SessionRecord) -> _Params:
    cursor = r.replay
    count, seq = (None, None) if cursor is None else (cursor.count, cursor.seq)
    return (r.room, r.session_id, r.data, r.wire, r.token_hash, r.expires_at, count, seq)


def _save_session(r: SessionRecord) -> tuple[str, _Params]:
    return _SAVE_SESSION, _record_params(r)


def _replace_session(r: SessionRecord, expected_token_hash: bytes) -> tuple[str, _Params]:
    return _REPLACE_SESSION, (*_record_params(r), expected_token_hash)


def _record(room: str, session_id: str, row: Sequence[object]) -> SessionRecord:
    data, wire, token_hash, expires_at, count, seq = row
    assert isinstance(data, bytes)
    assert isinstance(wire, str)
    assert isinstance(token_hash, bytes)
    assert isinstance(expires_at, float | int)
    assert count is None or isinstance(count, int)
    assert seq is None or isinstance(seq, int)
    return SessionRecord(
        room=room,
        session_id=session_id,
        data=data,
        wire=wire,
        token_hash=token_hash,
        expires_at=float(expires_at),
        replay=None if count is None or seq is None else ReplayCursor(count, seq),
    )


def _fence(room: str, token: int) -> tuple[str, int] | None:
    """What a write with fencing token ``token`` is checked against (0: not fenced)."""
    return (room, token) if token else None


def _fence_check(db: sqlite3.Connection, write: _Write) -> OwnershipLostError | None:
    """Compare ``write``'s token with its room's fence, inside its transaction.

    Below the fence, the refusal to give the writer (nothing of it is to be run);
    otherwise None, with the fence raised to the token if it was lower (a token from a
    cluster's lease, or a fence row lost), as `Commit.fence` asks.
    """
    if write.fence is None:
        return None
    room, token = write.fence
    row: Sequence[object] | None = db.execute(_READ_FENCE, (room,)).fetchone()
    stored = row[0] if row is not None else 0
    assert isinstance(stored, int)
    if token < stored:
        return OwnershipLostError(room, token, stored)
    if token > stored:
        db.execute(_SET_FENCE, (room, token))
    return None


def _logged_frame(seq: object, data: object) -> LoggedFrame:
    assert isinstance(seq, int)
    assert isinstance(data, bytes)
    return LoggedFrame(seq, data)


def _frame_statements(room: str, commit: Commit) -> list[tuple[str, _Params]]:
    """A commit's logged frames in few statements, then the log's trim."""
    frames = commit.frames
    if not frames:
        return []
    statements: list[tuple[str, _Params]] = []
    for start in range(0, len(frames), _ROWS_PER_STATEMENT):
        rows = frames[start : start + _ROWS_PER_STATEMENT]
        sql = _LOG_FRAMES + ", ".join(["(?, ?, ?)"] * len(rows))
        statements.append((sql, tuple(item for f in rows for item in (room, f.seq, f.data))))
    statements.append((_TRIM_LOG, (room, max(commit.keep_frames, 1))))
    return statements


def _alarm(room: object, name: object, at: object, attempt: object) -> StoredAlarm:
    assert isinstance(room, str)
    assert isinstance(name, str)
    assert isinstance(at, float | int)
    assert isinstance(attempt, int)
    return StoredAlarm(room=room, name=name, at=float(at), attempt=attempt)


#: Rows per statement when a commit writes many values (SQLite allows 32,766 variables).
_ROWS_PER_STATEMENT = 500


def _value_statements(room: str, values: Mapping[str, bytes | None]) -> list[tuple[str, _Params]]:
    """A commit's puts and deletes in as few statements as possible.

    Each statement is one trip of the worker thread through the GIL, which a busy event
    loop holds for up to the switch interval: a statement per value made a commit of a
    hundred events take milliseconds of waiting, not of SQLite.
    """
    puts = [(key, value) for key, value in values.items() if value is not None]
    deletes = [key for key, value in values.items() if value is None]
    statements: list[tuple[str, _Params]] = []
    for start in range(0, len(puts), _ROWS_PER_STATEMENT):
        rows = puts[start : start + _ROWS_PER_STATEMENT]
        sql = _PUT_ROWS + ", ".join(["(?, ?, ?)"] * len(rows))
        statements.append((sql, tuple(item for key, value in rows for item in (room, key, value))))
    for start in range(0, len(deletes), _ROWS_PER_STATEMENT):
        keys = deletes[start : start + _ROWS_PER_STATEMENT]
        sql = _DELETE_KEYS + ", ".join(["?"] * len(keys)) + ")"
        statements.append((sql, (room, *keys)))
    return statements


def _commit(db: sqlite3.Connection, batch: list[_Write]) -> None:
    if len(batch) == 1:
        _commit_alone(db, batch[0])
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for write in batch:
            _apply(db, write)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _commit_alone(db: sqlite3.Connection, write: _Write) -> None:
    """Commit the only write of a batch in as few statements as it allows.

    Every statement is a trip of this thread through the GIL, which a busy event loop
    holds for up to the switch interval, so a commit's latency is counted in statements:
    one statement is its own transaction (autocommit), and several need no savepoint,
    since failing alone is failing the transaction. Errors are the write's own, as in
    ``_apply``.
    """
    write.error, write.rowcounts, write.row = None, [], None
    single = len(write.statements) == 1 and write.then is None and write.fence is None
    try:
        if single:
            sql, params = write.statements[0]
            write.rowcounts.append(db.execute(sql, params).rowcount)
            return
        db.execute("BEGIN IMMEDIATE")
        refused = _fence_check(db, write)
        if refused is not None:
            db.execute("ROLLBACK")  # nothing was written: let the lock go at once
            write.error = refused
            return
        for sql, params in write.statements:
            write.rowcounts.append(db.execute(sql, params).rowcount)
        if write.then is not None and write.rowcounts[-1]:
            write.row = db.execute(*write.then).fetchone()
        db.execute("COMMIT")
    except Exception as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        write.error = exc


def _apply(db: sqlite3.Connection, write: _Write) -> None:
    """Run ``write`` in its own savepoint: if it fails, it leaves nothing, and fails alone."""
    write.error, write.rowcounts, write.row = None, [], None
    db.execute("SAVEPOINT write")
    try:
        refused = _fence_check(db, write)
        if refused is not None:
            db.execute("RELEASE write")  # nothing was written in it
            write.error = refused
            return
        for sql, params in write.statements:
            write.rowcounts.append(db.execute(sql, params).rowcount)
        if write.then is not None and write.rowcounts[-1]:
            write.row = db.execute(*write.then).fetchone()
    except Exception as exc:
        if not db.in_transaction:
            raise  # the error ended the whole transaction: nothing to roll back to
        db.execute("ROLLBACK TO write")
        db.execute("RELEASE write")
        write.error = exc
        return
    db.execute("RELEASE write")
