"""Storage backends: the Storage contract, on memory, a real SQLite file and a real Redis."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import attrs
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


async def _claim(storage: Storage, old: bytes, new: bytes) -> SessionRecord | None:
    return await storage.claim_session(
        "lobby", "s1", token_hash=old, new_token_hash=new, expires_at=1e10
    )


async def test_a_claim_spends_the_token_hash_once_and_keeps_the_data(storage: Storage) -> None:
    """A claim moves the record to the new hash and expiry; the old hash claims no more."""
    await storage.save_session(_record(data=b'{"n":7}'))
    claimed = await _claim(storage, b"h", b"h2")
    expected = SessionRecord(
        room="lobby",
        session_id="s1",
        data=b'{"n":7}',
        wire="json",
        token_hash=b"h2",
        expires_at=1e10,
    )
    assert claimed == expected
    assert await storage.load_session("lobby", "s1") == expected
    assert await _claim(storage, b"h", b"h3") is None
    assert await storage.load_session("lobby", "s1") == expected
    assert await _claim(storage, b"h", b"h2") == expected  # a retried claim succeeds again
    assert (
        await storage.claim_session(
            "lobby", "nobody", token_hash=b"h", new_token_hash=b"h4", expires_at=1e10
        )
        is None
    )
    assert await storage.load_session("lobby", "nobody") is None


async def test_concurrent_claims_of_one_token_hash_have_exactly_one_winner(
    storage: Storage,
) -> None:
    """Of 20 claims of one hash at once exactly one succeeds, and the record holds its hash."""
    await storage.save_session(_record())
    won: list[bytes] = []

    async def claim(n: int) -> None:
        if await _claim(storage, b"h", b"new-%d" % n) is not None:
            won.append(b"new-%d" % n)

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(claim, n)
    assert len(won) == 1
    loaded = await storage.load_session("lobby", "s1")
    assert loaded is not None
    assert loaded.token_hash == won[0]


async def test_a_replace_writes_only_while_the_record_holds_the_expected_hash(
    storage: Storage,
) -> None:
    """replace_session writes over its own hash or no record, and refuses another hash."""
    assert await storage.replace_session(_record(), expected_token_hash=b"h")  # no record yet
    assert await storage.load_session("lobby", "s1") == _record()
    assert await storage.replace_session(_record(data=b'{"n":2}'), expected_token_hash=b"h")
    assert not await storage.replace_session(_record(data=b'{"n":3}'), expected_token_hash=b"x")
    assert await storage.load_session("lobby", "s1") == _record(data=b'{"n":2}')
    assert await _claim(storage, b"h", b"h2") is not None
    # The session was resumed: its old owner's write is refused, the claim stands.
    assert not await storage.replace_session(_record(data=b'{"n":4}'), expected_token_hash=b"h")
    loaded = await storage.load_session("lobby", "s1")
    assert loaded is not None
    assert (loaded.data, loaded.token_hash) == (b'{"n":2}', b"h2")


async def test_writes_of_the_owner_racing_a_claim_are_kept_or_refused_never_lost(
    storage: Storage,
) -> None:
    """Owner writes racing a claim either land before it and are kept, or are refused."""
    await storage.save_session(_record(data=b"0"))
    accepted: list[int] = []
    claimed: list[SessionRecord] = []

    async def write(n: int) -> None:
        if await storage.replace_session(_record(data=b"%d" % n), expected_token_hash=b"h"):
            accepted.append(n)

    async def claim() -> None:
        record = await _claim(storage, b"h", b"h2")
        assert record is not None
        claimed.append(record)

    async with trio.open_nursery() as nursery:
        for n in range(1, 11):
            nursery.start_soon(write, n)
        nursery.start_soon(claim)
        for n in range(11, 21):
            nursery.start_soon(write, n)
    (record,) = claimed
    assert await storage.load_session("lobby", "s1") == record  # nothing landed after it
    # Every accepted write came before the claim (later ones expect a spent hash), and
    # the claim kept the data of one of them: none is replaced by the data it read.
    assert record.data in ({b"%d" % n for n in accepted} if accepted else {b"0"})


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
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_sqlite_refuses_a_schema_from_the_future(tmp_path: Path) -> None:
    """A file with an unknown schema version is refused with a clear error."""
    path = tmp_path / "rooms.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    storage = SqliteStorage(path)
    with pytest.raises(StorageError, match="schema version 99"):
        await storage.open()


async def test_sqlite_waits_busy_timeout_for_a_lock_held_elsewhere_then_says_so(
    tmp_path: Path,
) -> None:
    """While another connection holds the file's write lock, a write waits the storage's
    ``busy_timeout`` (not the default 5 s) and then fails naming it; it works once the
    lock is let go."""
    path = tmp_path / "rooms.db"
    storage = SqliteStorage(path, busy_timeout=0.2)
    await storage.open()
    try:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock, held until ROLLBACK
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"database is locked.*busy_timeout=0\.2 s"):
            await storage.put("lobby", "key", b"x")
        waited = time.monotonic() - started
        assert 0.2 <= waited < 5.0
        other.execute("ROLLBACK")
        other.close()
        await storage.put("lobby", "key", b"y")
        assert await storage.get("lobby", "key") == b"y"
    finally:
        await storage.aclose()


def test_sqlite_refuses_a_negative_busy_timeout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        SqliteStorage(tmp_path / "rooms.db", busy_timeout=-1)


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


async def test_memory_storage_forgets_records_past_their_resume_window() -> None:
    """MemoryStorage sweeps expired records as new ones arrive; live ones are kept."""
    storage = MemoryStorage()
    expired = attrs.evolve(_record(), expires_at=time.time() - 1)
    for index in range(5000):
        await storage.save_session(attrs.evolve(expired, session_id=f"gone-{index}"))
    await storage.save_session(_record("alive"))
    held = len(storage._sessions)  # pyright: ignore[reportPrivateUsage]
    assert held < 1100, held  # bounded by the sweep, not by the 5,000 saved
    assert await storage.load_session("lobby", "alive") == _record("alive")
