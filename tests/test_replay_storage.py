"""The replay log in every backend: appends with commits, the count bound, schema 3."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import coredis
import pytest

from trio_rooms.storage import (
    Commit,
    LoggedFrame,
    RecordWrite,
    ReplayCursor,
    SessionRecord,
    SqliteStorage,
)
from trio_rooms.storage.redis import RedisStorage

from .gated_storage import BACKENDS, make_backend, open_backend
from .redis_server import RedisServer
from .redis_server import redis_server as redis_server  # the fixture


def _record(session_id: str, cursor: ReplayCursor | None) -> SessionRecord:
    return SessionRecord(
        room="lobby",
        session_id=session_id,
        data=b"{}",
        wire="json",
        token_hash=b"h",
        expires_at=9e9,
        replay=cursor,
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_logged_frames_land_with_their_commit_and_keep_the_newest(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Frames are read back in order after a seq, trimmed to the newest keep_frames."""
    async with open_backend(make_backend(backend, request, tmp_path)) as storage:
        assert await storage.last_frame_seq("lobby") == 0
        frames = [LoggedFrame(seq, b"same bytes") for seq in range(10, 16)]
        record = RecordWrite(record=_record("s1", ReplayCursor(3, 15)))
        commit = Commit(room="lobby", records=[record], frames=frames, keep_frames=4)
        assert await storage.commit(commit) == [True]
        assert await storage.load_frames("lobby") == frames[2:]
        assert await storage.load_frames("lobby", after=13) == frames[4:]
        assert await storage.load_frames("other") == []
        assert await storage.last_frame_seq("lobby") == 15
        loaded = await storage.load_session("lobby", "s1")
        assert loaded is not None
        assert loaded.replay == ReplayCursor(3, 15)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_commit_of_thousands_of_frames_logs_each_of_them_in_order(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """2,501 frames in one commit (Redis adds them 500 at a time) are all read back."""
    async with open_backend(make_backend(backend, request, tmp_path)) as storage:
        frames = [LoggedFrame(seq, b"%d" % seq) for seq in range(1, 2502)]
        assert await storage.commit(Commit(room="lobby", frames=frames, keep_frames=5000)) == []
        assert await storage.load_frames("lobby") == frames
        assert await storage.last_frame_seq("lobby") == 2501


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_commit_with_frames_out_of_order_is_refused_whole(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Frames whose seq does not increase are refused before anything is written."""
    async with open_backend(make_backend(backend, request, tmp_path)) as storage:
        frames = [LoggedFrame(5, b"a"), LoggedFrame(5, b"b")]
        with pytest.raises(ValueError, match="increasing seq"):
            await storage.commit(Commit(room="lobby", values={"k": b"v"}, frames=frames))
        assert await storage.get("lobby", "k") is None
        assert await storage.load_frames("lobby") == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_claim_keeps_the_replay_cursor(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Spending a token keeps the record's place in the replay log."""
    async with open_backend(make_backend(backend, request, tmp_path)) as storage:
        await storage.save_session(_record("s1", ReplayCursor(7, 1234)))
        claimed = await storage.claim_session(
            "lobby", "s1", token_hash=b"h", new_token_hash=b"h2", expires_at=9e9
        )
        assert claimed is not None
        assert claimed.replay == ReplayCursor(7, 1234)


#: Schema 2 as trio_rooms wrote it: sessions, room values and alarms.
SCHEMA_V2 = (
    """CREATE TABLE sessions (
        room TEXT NOT NULL,
        session_id TEXT NOT NULL,
        data BLOB NOT NULL,
        wire TEXT NOT NULL,
        token_hash BLOB NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (room, session_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE room_state (
        room TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (room, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE alarms (
        room TEXT NOT NULL,
        name TEXT NOT NULL,
        at REAL NOT NULL,
        attempt INTEGER NOT NULL,
        PRIMARY KEY (room, name)
    ) WITHOUT ROWID""",
    "CREATE INDEX alarms_by_time ON alarms (at, room, name)",
    "PRAGMA user_version = 2",
)


async def test_sqlite_migrates_a_version_2_file_in_place(tmp_path: Path) -> None:
    """A schema 2 file keeps its sessions, which have no replay cursor, and gains the log."""
    path = tmp_path / "rooms.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        for statement in SCHEMA_V2:
            db.execute(statement)
        db.execute("INSERT INTO sessions VALUES ('lobby', 's1', X'7B7D', 'json', X'68', 9e9)")
        db.execute("INSERT INTO room_state VALUES ('lobby', 'a', X'31')")
    db.close()
    async with open_backend(SqliteStorage(path)) as storage:
        assert await storage.load_session("lobby", "s1") == _record("s1", None)
        assert await storage.get("lobby", "a") == b"1"
        frames = [LoggedFrame(1, b"x")]
        await storage.commit(Commit(room="lobby", frames=frames, keep_frames=10))
        await storage.save_session(_record("s2", ReplayCursor(0, 1)))
    async with open_backend(SqliteStorage(path)) as again:
        assert await again.load_frames("lobby") == frames
        assert await again.load_session("lobby", "s2") == _record("s2", ReplayCursor(0, 1))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


async def test_redis_lets_a_log_expire_once_no_replay_could_use_it(
    redis_server: RedisServer,
) -> None:
    """The log key lives frames_expire_after past its last frame, so a gone room's log goes."""
    async with (
        open_backend(RedisStorage(redis_server.url)) as storage,
        coredis.Redis.from_url(redis_server.url) as redis,
    ):
        frame = LoggedFrame(1, b"x")
        await storage.commit(Commit(room="a", frames=[frame], keep_frames=5))
        await storage.commit(
            Commit(room="b", frames=[frame], keep_frames=5, frames_expire_after=60.0)
        )
        assert await redis.pttl("trio_rooms:replay:a") == -1  # no bound: kept
        assert 0 < await redis.pttl("trio_rooms:replay:b") <= 60_000
        assert await storage.load_frames("b") == [frame]
