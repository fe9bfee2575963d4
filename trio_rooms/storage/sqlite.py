"""``SqliteStorage``: durable storage in one SQLite file (WAL), the embedded default.

sqlite3 blocks, so every call runs in a worker thread (`trio.to_thread`). Writes are
group-committed: writes that arrive while a commit is running wait for the next one
and go in together, in one transaction, so 100 sessions calling ``update()`` at once
cost a few fsyncs, not 100. A write returns only after its transaction committed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Final, Literal, final

import attrs
import trio

from .._core.storage import SessionRecord
from .._errors import StorageError

__all__ = ["SqliteStorage"]

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS sessions (
        room TEXT NOT NULL,
        session_id TEXT NOT NULL,
        data BLOB NOT NULL,
        wire TEXT NOT NULL,
        token_hash BLOB NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (room, session_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS room_state (
        room TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (room, key)
    ) WITHOUT ROWID""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_LOAD_SESSION: Final = (
    "SELECT data, wire, token_hash, expires_at FROM sessions WHERE room = ? AND session_id = ?"
)
_SAVE_SESSION: Final = (
    "INSERT OR REPLACE INTO sessions (room, session_id, data, wire, token_hash, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# The two compare-and-set writes of a resumable session's record (see Storage): each
# is one statement, so its comparison and its write are one step of the transaction.
_CLAIM_SESSION: Final = (
    "UPDATE sessions SET token_hash = ?1, expires_at = ?2 "
    "WHERE room = ?3 AND session_id = ?4 AND token_hash IN (?5, ?1)"
)
_REPLACE_SESSION: Final = (
    "INSERT INTO sessions (room, session_id, data, wire, token_hash, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room, session_id) DO UPDATE SET "
    "data = excluded.data, wire = excluded.wire, token_hash = excluded.token_hash, "
    "expires_at = excluded.expires_at WHERE sessions.token_hash = ?"
)
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE room = ? AND session_id = ?"
_GET: Final = "SELECT value FROM room_state WHERE room = ? AND key = ?"
_PUT: Final = "INSERT OR REPLACE INTO room_state (room, key, value) VALUES (?, ?, ?)"
_DELETE: Final = "DELETE FROM room_state WHERE room = ? AND key = ?"

_Params = tuple[object, ...]


@attrs.define
class _Write:
    sql: str
    params: _Params
    #: A query run right after ``sql`` in the same transaction, if ``sql`` changed a row.
    then: tuple[str, _Params] | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None
    #: Rows ``sql`` changed, and the row ``then`` read, once committed.
    rowcount: int = 0
    row: Sequence[object] | None = None


@final
class SqliteStorage:
    """Session records and room state in the SQLite file at ``path``.

    Durability: an ``update()`` (or ``room.storage.put``) that returned survives a
    crash of the process with any setting, and a power loss with
    ``synchronous="FULL"`` (the default; ``"NORMAL"`` is faster and may lose the last
    commits on power loss, never corrupts).

    Args:
        path: The database file; created with its schema on first use.
        synchronous: SQLite's ``PRAGMA synchronous`` for the WAL.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: Literal["FULL", "NORMAL"] = "FULL"
    ) -> None:
        self._path = os.fspath(path)
        self._synchronous = synchronous
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = trio.Lock()
        self._pending: list[_Write] = []
        self._flushing = False

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
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite storage {self._path!r}: {exc}") from exc

    def _connect(self, create: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        if create:
            db.execute("PRAGMA journal_mode = WAL")
            version: int = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute("COMMIT")
            elif version != SCHEMA_VERSION:
                db.close()
                raise StorageError(
                    f"{self._path!r} has schema version {version}; "
                    f"this trio_rooms reads version {SCHEMA_VERSION}"
                )
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        return db

    async def aclose(self) -> None:
        """Wait for pending writes, then close the connections."""
        with trio.CancelScope(shield=True):
            while self._flushing:
                await self._write("SELECT 1", ())
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
        r = record
        await self._write(
            _SAVE_SESSION, (r.room, r.session_id, r.data, r.wire, r.token_hash, r.expires_at)
        )

    async def claim_session(
        self,
        room: str,
        session_id: str,
        *,
        token_hash: bytes,
        new_token_hash: bytes,
        expires_at: float,
    ) -> SessionRecord | None:
        """Move the record from ``token_hash`` to ``new_token_hash``; None if it holds another.

        One ``UPDATE ... WHERE token_hash IN (old, new)`` in the group-committed
        transaction (its rowcount says who won); the record is read back in that same
        transaction.
        """
        key = (room, session_id)
        write = await self._write(
            _CLAIM_SESSION,
            (new_token_hash, expires_at, *key, token_hash),
            then=(_LOAD_SESSION, key),
        )
        if write.rowcount != 1 or write.row is None:
            return None
        return _record(room, session_id, write.row)

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        """Replace ``record`` if it holds ``expected_token_hash`` (or is gone); else False."""
        r = record
        write = await self._write(
            _REPLACE_SESSION,
            (r.room, r.session_id, r.data, r.wire, r.token_hash, r.expires_at, expected_token_hash),
        )
        return write.rowcount == 1

    async def delete_session(self, room: str, session_id: str) -> None:
        """Forget a session (nothing happens if it is unknown)."""
        await self._write(_DELETE_SESSION, (room, session_id))

    # ---------------------------------------------------------------- room state

    async def get(self, room: str, key: str) -> bytes | None:
        """The value under ``key`` for ``room``, or None."""
        row = await self._read_one(
            "SELECT value FROM room_state WHERE room = ? AND key = ?", (room, key)
        )
        if row is None:
            return None
        value = row[0]
        assert isinstance(value, bytes)
        return value

    async def put(self, room: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` for ``room``."""
        await self._write(
            "INSERT OR REPLACE INTO room_state (room, key, value) VALUES (?, ?, ?)",
            (room, key, value),
        )

    async def delete(self, room: str, key: str) -> None:
        """Remove ``key`` of ``room`` (nothing happens if it is absent)."""
        await self._write(_DELETE, (room, key))

    # ----------------------------------------------------------------- internals

    async def _read_one(self, sql: str, params: _Params) -> Sequence[object] | None:
        db = self._reader
        if db is None:
            raise StorageError("SQLite storage is not open")
        async with self._read_lock:
            try:
                return await trio.to_thread.run_sync(_fetch_one, db, sql, params)
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite read failed: {exc}") from exc

    async def _write(
        self, sql: str, params: _Params, *, then: tuple[str, _Params] | None = None
    ) -> _Write:
        """Commit one statement, together with whatever else is waiting to be written."""
        if self._writer is None:
            raise StorageError("SQLite storage is not open")
        write = _Write(sql, params, then)
        self._pending.append(write)
        if self._flushing:
            await write.done.wait()  # the running flush takes it in its next transaction
        else:
            await self._flush()
        if write.error is not None:
            raise StorageError(f"SQLite write failed: {write.error}") from write.error
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
                        await trio.to_thread.run_sync(_commit, db, batch)
                    except sqlite3.Error as exc:
                        if len(batch) == 1:
                            batch[0].error = exc
                        else:
                            # One bad write must not fail the others it was batched with.
                            for write in batch:
                                try:
                                    await trio.to_thread.run_sync(_commit, db, [write])
                                except sqlite3.Error as single:
                                    write.error = single
                    for write in batch:
                        write.done.set()
        finally:
            self._flushing = False


def _fetch_one(db: sqlite3.Connection, sql: str, params: _Params) -> Sequence[object] | None:
    row: Sequence[object] | None = db.execute(sql, params).fetchone()
    return row


def _record(room: str, session_id: str, row: Sequence[object]) -> SessionRecord:
    data, wire, token_hash, expires_at = row
    assert isinstance(data, bytes)
    assert isinstance(wire, str)
    assert isinstance(token_hash, bytes)
    assert isinstance(expires_at, float | int)
    return SessionRecord(
        room=room,
        session_id=session_id,
        data=data,
        wire=wire,
        token_hash=token_hash,
        expires_at=float(expires_at),
    )


def _commit(db: sqlite3.Connection, batch: list[_Write]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        for write in batch:
            write.rowcount = db.execute(write.sql, write.params).rowcount
            if write.then is not None and write.rowcount:
                write.row = db.execute(*write.then).fetchone()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
