"""Storage backends: the Storage contract, on memory, a real SQLite file and a real Redis."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
import trio

from trio_rooms import StorageError
from trio_rooms.storage import MemoryStorage, SessionRecord, SqliteStorage, Storage
from trio_rooms.storage.redis import RedisStorage

from .redis_server import RedisServer
from .redis_server import redis_server as redis_server  # the fixture, for the "redis" backend


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncGenerator[Storage]:
    backend: Storage
    if request.param == "memory":
        backend = MemoryStorage()
    elif request.param == "sqlite":
        backend = SqliteStorage(tmp_path / "rooms.db")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        backend = RedisStorage(server.url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.aclose()


def _record(session_id: str = "s1", data: bytes = b'{"n":1}') -> SessionRecord:
    return SessionRecord(
        room="lobby", session_id=session_id, data=data, wire="json", token_hash=b"h", expires_at=9e9
    )


async def test_session_records_round_trip(storage: Storage) -> None:
    """A saved record loads back equal; a deleted one is gone; rooms do not share ids."""
    await storage.save_session(_record())
    assert await storage.load_session("lobby", "s1") == _record()
    assert await storage.load_session("other", "s1") is None
    await storage.save_session(_record(data=b'{"n":2}'))
    loaded = await storage.load_session("lobby", "s1")
    assert loaded is not None
    assert loaded.data == b'{"n":2}'
    await storage.delete_session("lobby", "s1")
    assert await storage.load_session("lobby", "s1") is None
    await storage.delete_session("lobby", "s1")  # deleting twice is fine


async def test_room_values_round_trip(storage: Storage) -> None:
    """put/get/delete per room and key."""
    assert await storage.get("lobby", "k") is None
    await storage.put("lobby", "k", b"v1")
    await storage.put("other", "k", b"v2")
    assert await storage.get("lobby", "k") == b"v1"
    assert await storage.get("other", "k") == b"v2"
    await storage.delete("lobby", "k")
    assert await storage.get("lobby", "k") is None


async def test_concurrent_writes_all_commit(storage: Storage) -> None:
    """100 concurrent writers each return only once their write is stored."""

    async def write(n: int) -> None:
        await storage.save_session(_record(f"s{n}", f'{{"n":{n}}}'.encode()))
        record = await storage.load_session("lobby", f"s{n}")
        assert record is not None
        assert record.data == f'{{"n":{n}}}'.encode()

    async with trio.open_nursery() as nursery:
        for n in range(100):
            nursery.start_soon(write, n)


async def test_sqlite_keeps_data_across_reopen(tmp_path: Path) -> None:
    """What one SqliteStorage wrote, the next one on the same file reads; WAL is on."""
    path = tmp_path / "rooms.db"
    first = SqliteStorage(path)
    await first.open()
    await first.save_session(_record())
    await first.put("lobby", "history", b"[1,2]")
    await first.aclose()
    second = SqliteStorage(path)
    await second.open()
    assert await second.load_session("lobby", "s1") == _record()
    assert await second.get("lobby", "history") == b"[1,2]"
    await second.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_sqlite_refuses_a_schema_from_the_future(tmp_path: Path) -> None:
    """A file with an unknown schema version is refused with a clear error."""
    path = tmp_path / "rooms.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    storage = SqliteStorage(path)
    with pytest.raises(StorageError, match="schema version 99"):
        await storage.open()


def _refuse_key(path: Path, key: str) -> None:
    """Make SQLite itself refuse writes of ``key`` to room_state."""
    with sqlite3.connect(path) as db:
        db.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON room_state WHEN NEW.key = '{key}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
        )


async def test_a_failing_write_raises_storage_error(tmp_path: Path) -> None:
    """A write that SQLite refuses raises StorageError, and later writes still work."""
    storage = SqliteStorage(tmp_path / "rooms.db")
    await storage.open()
    _refuse_key(tmp_path / "rooms.db", "bad")
    with pytest.raises(StorageError, match="refused by trigger"):
        await storage.put("lobby", "bad", b"x")
    await storage.put("lobby", "good", b"y")
    assert await storage.get("lobby", "good") == b"y"
    await storage.aclose()


async def test_a_failing_write_does_not_fail_the_writes_batched_with_it(tmp_path: Path) -> None:
    """Group commit: a refused write fails alone; concurrent writes still commit."""
    storage = SqliteStorage(tmp_path / "rooms.db")
    await storage.open()
    _refuse_key(tmp_path / "rooms.db", "bad")
    failures: list[str] = []

    async def put(key: str) -> None:
        try:
            await storage.put("lobby", key, b"v")
        except StorageError:
            failures.append(key)

    async with trio.open_nursery() as nursery:
        for key in ["a", "b", "bad", "c", "d"]:
            nursery.start_soon(put, key)
    assert failures == ["bad"]
    for key in "abcd":
        assert await storage.get("lobby", key) == b"v"
    await storage.aclose()


async def test_using_a_closed_sqlite_storage_is_an_error(tmp_path: Path) -> None:
    """Reads and writes before open() raise StorageError."""
    storage = SqliteStorage(tmp_path / "rooms.db")
    with pytest.raises(StorageError, match="not open"):
        await storage.get("lobby", "k")
    with pytest.raises(StorageError, match="not open"):
        await storage.put("lobby", "k", b"v")
