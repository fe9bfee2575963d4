"""Atomic commits and durable alarms: the Storage contract on memory, SQLite and Redis.

Each backend's own way of failing part-way (a trigger in SQLite, a record the Redis
script cannot read) is tested against the same promise: a commit lands whole or not
at all, and fails alone.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncGenerator
from pathlib import Path

import attrs
import coredis
import pytest
import trio

from trio_rooms import StorageError
from trio_rooms.storage import (
    Commit,
    LoggedFrame,
    RecordWrite,
    SessionRecord,
    SqliteStorage,
    Storage,
    StoredAlarm,
)
from trio_rooms.storage.redis import RedisStorage

from .gated_storage import BACKENDS, make_backend, open_backend
from .redis_server import EVERY_URL, RedisServer

#: A wall-clock time with every bit of its float in use, to catch a lossy encoding.
T0 = 1_700_000_000.123456789


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncGenerator[Storage]:
    async with open_backend(make_backend(request.param, request, tmp_path)) as backend:
        yield backend


def _record(session_id: str, data: bytes = b"{}", token_hash: bytes = b"h") -> SessionRecord:
    return SessionRecord(
        room="lobby",
        session_id=session_id,
        data=data,
        wire="json",
        token_hash=token_hash,
        expires_at=9e9,
    )


def _alarm(name: str, at: float, room: str = "lobby", attempt: int = 0) -> StoredAlarm:
    return StoredAlarm(room=room, name=name, at=at, attempt=attempt)


async def _set_alarms(storage: Storage, *alarms: StoredAlarm) -> None:
    for alarm in alarms:
        await storage.commit(Commit(room=alarm.room, alarms={alarm.name: alarm}))


async def _snapshot(storage: Storage, sessions: tuple[str, ...] = ("s1", "s2")) -> object:
    """What the tests below may write to room "lobby", read back."""
    return (
        [await storage.get("lobby", key) for key in ("a", "b", "old")],
        await storage.load_alarms("lobby"),
        [await storage.load_session("lobby", session_id) for session_id in sessions],
    )


# ----------------------------------------------------------------------- commits


async def test_a_commit_writes_values_deletes_alarms_cancels_and_records_together(
    storage: Storage,
) -> None:
    """One commit sets and deletes values, sets and cancels alarms and writes records."""
    await storage.put("lobby", "old", b"gone soon")
    await _set_alarms(storage, _alarm("old", T0), _alarm("kept", T0 + 5))
    await storage.save_session(_record("s2"))
    await storage.save_session(_record("s3", data=b"theirs", token_hash=b"other"))
    written = await storage.commit(
        Commit(
            room="lobby",
            values={"a": b"1", "b": b"", "old": None, "never": None},
            alarms={"tick": _alarm("tick", T0 + 1, attempt=2), "old": None, "none": None},
            records=[
                RecordWrite(record=_record("s1", b"new")),
                RecordWrite(record=_record("s2", b"mine"), expected_token_hash=b"h"),
                RecordWrite(record=_record("s3", b"lost"), expected_token_hash=b"h"),
            ],
        )
    )
    assert written == [True, True, False]
    assert [await storage.get("lobby", key) for key in ("a", "b", "old")] == [b"1", b"", None]
    assert await storage.load_alarms("lobby") == [
        _alarm("tick", T0 + 1, attempt=2),
        _alarm("kept", T0 + 5),
    ]
    assert await storage.load_session("lobby", "s1") == _record("s1", b"new")
    assert await storage.load_session("lobby", "s2") == _record("s2", b"mine")
    # The failed compare-and-set wrote nothing, and failed nothing else.
    assert await storage.load_session("lobby", "s3") == _record("s3", b"theirs", b"other")


async def test_records_of_one_session_in_one_commit_compare_with_what_came_before(
    storage: Storage,
) -> None:
    """A record's compare-and-set sees the record written before it in the same commit."""
    await storage.save_session(_record("s1"))
    written = await storage.commit(
        Commit(
            room="lobby",
            records=[
                RecordWrite(record=_record("s1", b"1", b"h2"), expected_token_hash=b"h"),
                RecordWrite(record=_record("s1", b"2", b"h3"), expected_token_hash=b"h"),
                RecordWrite(record=_record("s1", b"3", b"h4"), expected_token_hash=b"h2"),
            ],
        )
    )
    assert written == [True, False, True]
    assert await storage.load_session("lobby", "s1") == _record("s1", b"3", b"h4")


async def test_an_empty_commit_changes_nothing(storage: Storage) -> None:
    """A commit with nothing in it returns no results and writes nothing."""
    assert await storage.commit(Commit(room="lobby")) == []
    assert await storage.next_alarms(10) == []


async def test_a_commit_with_an_alarm_no_backend_can_store_is_refused_whole(
    storage: Storage,
) -> None:
    """An alarm filed under another name or room, or not at a finite time, fails the commit."""
    before = await _snapshot(storage)
    bad_alarms = {
        "tick": _alarm("tock", T0),
        "tock": _alarm("tock", T0, room="other"),
        "nan": _alarm("nan", math.nan),
        "inf": _alarm("inf", math.inf),
        "minus": _alarm("minus", T0, attempt=-1),
        "huge": _alarm("huge", T0, attempt=2**63),
    }
    for name, alarm in bad_alarms.items():
        commit = Commit(
            room="lobby",
            values={"a": b"1"},
            alarms={"fine": _alarm("fine", T0), name: alarm},
            records=[RecordWrite(record=_record("s1"))],
        )
        with pytest.raises(ValueError, match=repr(name)):
            await storage.commit(commit)
    assert await _snapshot(storage) == before


async def test_many_concurrent_commits_all_land(storage: Storage) -> None:
    """60 commits at once, over three rooms, each return once all of their writes are stored."""

    def commit(n: int) -> Commit:
        room = f"room-{n % 3}"
        return Commit(
            room=room,
            values={f"k{n}": b"%d" % n},
            alarms={f"a{n}": _alarm(f"a{n}", T0 + n, room=room)},
            records=[RecordWrite(record=attrs.evolve(_record(f"s{n}"), room=room))],
        )

    async def run(n: int) -> None:
        assert await storage.commit(commit(n)) == [True]

    async with trio.open_nursery() as nursery:
        for n in range(60):
            nursery.start_soon(run, n)
    for n in range(60):
        expected = commit(n)
        assert await storage.get(expected.room, f"k{n}") == b"%d" % n
        assert await storage.load_session(expected.room, f"s{n}") == expected.records[0].record
    assert await storage.next_alarms(100) == [
        alarm for n in range(60) for alarm in commit(n).alarms.values()
    ]


# ------------------------------------------------------------------------ alarms


async def test_next_alarms_are_every_rooms_earliest_first_within_the_limit(
    storage: Storage,
) -> None:
    """next_alarms merges the rooms by time and stops at limit; load_alarms keeps to a room."""
    alarms = [
        _alarm("b", T0 + 3, room="lobby"),
        _alarm("a", T0 + 1, room="other"),
        _alarm("c", T0 - 2, room="lobby", attempt=4),
        _alarm("z", T0 + 2, room="third"),
        _alarm("a", T0 + 4, room="lobby"),
    ]
    await _set_alarms(storage, *alarms)
    by_time = sorted(alarms, key=lambda alarm: alarm.at)
    assert await storage.next_alarms(10) == by_time
    assert await storage.next_alarms(3) == by_time[:3]
    assert await storage.next_alarms(1) == by_time[:1]
    assert await storage.next_alarms(0) == []
    assert await storage.load_alarms("lobby") == [alarms[2], alarms[0], alarms[4]]
    assert await storage.load_alarms("other") == [alarms[1]]
    assert await storage.load_alarms("empty") == []
    with pytest.raises(ValueError, match="limit"):
        await storage.next_alarms(-1)


async def test_alarms_due_at_the_same_time_come_by_room_then_name(storage: Storage) -> None:
    """Ties in time are broken the same way on every backend: by room, then by name."""
    tied = [
        _alarm(name, T0, room=room)
        for room in ("lobby", "lobby-x", "lobby.x", "lobbyx")
        for name in ("", " ", "a", "a b", "é")
    ]
    await _set_alarms(storage, *reversed(tied))
    assert await storage.next_alarms(100) == tied
    assert await storage.next_alarms(7) == tied[:7]
    assert await storage.load_alarms("lobby.x") == tied[10:15]


async def test_an_alarm_set_again_moves_in_the_queue(storage: Storage) -> None:
    """Setting an alarm of the same name replaces it: one alarm per name, at its new time."""
    await _set_alarms(storage, _alarm("x", T0), _alarm("y", T0 + 1))
    await _set_alarms(storage, _alarm("x", T0 + 2, attempt=1))
    assert await storage.next_alarms(10) == [_alarm("y", T0 + 1), _alarm("x", T0 + 2, attempt=1)]


async def test_replace_alarm_is_a_compare_and_set(storage: Storage) -> None:
    """replace_alarm writes only over the alarm as given: not after a re-set or a cancel."""
    fired = _alarm("turn", T0)
    retry = _alarm("turn", T0 + 10, attempt=1)
    await _set_alarms(storage, fired)
    assert await storage.replace_alarm(fired, retry)
    assert await storage.load_alarms("lobby") == [retry]
    assert await storage.next_alarms(10) == [retry]
    assert not await storage.replace_alarm(fired, None)  # it moved on: the old one is gone
    # Set again while it fired: the replacement of the old one changes nothing.
    again = _alarm("turn", T0 + 60)
    await _set_alarms(storage, again)
    assert not await storage.replace_alarm(retry, _alarm("turn", T0 + 20, attempt=2))
    assert await storage.load_alarms("lobby") == [again]
    # Cancelled while it fired: the replacement does not bring it back.
    await storage.commit(Commit(room="lobby", alarms={"turn": None}))
    assert not await storage.replace_alarm(again, _alarm("turn", T0 + 70, attempt=1))
    assert await storage.next_alarms(10) == []
    # None deletes it, from the room and from the queue.
    await _set_alarms(storage, again)
    assert await storage.replace_alarm(again, None)
    assert await storage.load_alarms("lobby") == []
    assert await storage.next_alarms(10) == []


async def test_replace_alarm_refuses_another_alarm_and_an_unstorable_one(
    storage: Storage,
) -> None:
    """Replacing an alarm by one of another name or room, or at NaN, raises and changes nothing."""
    alarm = _alarm("turn", T0)
    await _set_alarms(storage, alarm)
    for new in (_alarm("other", T0), _alarm("turn", T0, room="other"), _alarm("turn", math.nan)):
        with pytest.raises(ValueError, match="turn"):
            await storage.replace_alarm(alarm, new)
    assert await storage.next_alarms(10) == [alarm]


async def test_concurrent_replaces_of_one_alarm_have_exactly_one_winner(
    storage: Storage,
) -> None:
    """Of 20 replaces of the same stored alarm at once exactly one succeeds, and is stored."""
    alarm = _alarm("turn", T0)
    await _set_alarms(storage, alarm)
    won: list[StoredAlarm] = []

    async def replace(n: int) -> None:
        new = _alarm("turn", T0 + n, attempt=n)
        if await storage.replace_alarm(alarm, new):
            won.append(new)

    async with trio.open_nursery() as nursery:
        for n in range(1, 21):
            nursery.start_soon(replace, n)
    assert len(won) == 1
    assert await storage.next_alarms(10) == won


# ------------------------------------------------------------------------ SQLite

#: The schema SqliteStorage wrote before alarms existed, exactly.
SCHEMA_V1 = (
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
    "PRAGMA user_version = 1",
)


async def test_sqlite_migrates_a_version_1_file_in_place(tmp_path: Path) -> None:
    """A file of schema 1 keeps its sessions and values, and gains alarms, as version 2."""
    path = tmp_path / "rooms.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        for statement in SCHEMA_V1:
            db.execute(statement)
        db.execute(
            "INSERT INTO sessions VALUES ('lobby', 's1', X'7B7D', 'json', X'68', 9e9)"
        )  # {} and h
        db.execute("INSERT INTO room_state VALUES ('lobby', 'a', X'31')")
    db.close()
    storage = SqliteStorage(path)
    async with open_backend(storage):
        assert await storage.load_session("lobby", "s1") == _record("s1")
        assert await storage.get("lobby", "a") == b"1"
        await _set_alarms(storage, _alarm("tick", T0))
        assert await storage.next_alarms(1) == [_alarm("tick", T0)]
    async with open_backend(SqliteStorage(path)) as again:  # opening a v2 file migrates nothing
        assert await again.load_alarms("lobby") == [_alarm("tick", T0)]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT room, name, at, attempt FROM alarms "
            "ORDER BY at, room, name LIMIT 5"
        ).fetchall()
    db.close()
    assert "alarms_by_time" in str(plan)
    assert "TEMP B-TREE" not in str(plan)  # read in order from the index, not sorted


async def test_sqlite_keeps_commits_and_alarms_across_reopen(tmp_path: Path) -> None:
    """What a commit and replace_alarm wrote, the next SqliteStorage on the file reads."""
    path = tmp_path / "rooms.db"
    async with open_backend(SqliteStorage(path)) as first:
        await first.commit(
            Commit(
                room="lobby",
                values={"a": b"1"},
                alarms={"x": _alarm("x", T0), "y": _alarm("y", T0 + 1)},
                records=[RecordWrite(record=_record("s1"))],
            )
        )
        assert await first.replace_alarm(_alarm("x", T0), _alarm("x", T0 + 2, attempt=1))
    async with open_backend(SqliteStorage(path)) as second:
        assert await second.get("lobby", "a") == b"1"
        assert await second.load_session("lobby", "s1") == _record("s1")
        assert await second.next_alarms(5) == [_alarm("y", T0 + 1), _alarm("x", T0 + 2, attempt=1)]


def _refuse_alarm(path: Path, name: str) -> None:
    """Make SQLite itself refuse to store an alarm called ``name``."""
    with sqlite3.connect(path) as db:
        db.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON alarms WHEN NEW.name = '{name}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
        )
    db.close()


def _failing_commit(room: str = "lobby") -> Commit:
    """A commit whose alarm SQLite refuses after its values and before its records."""
    return Commit(
        room=room,
        values={"a": b"1", "old": None},
        alarms={"fine": _alarm("fine", T0, room=room), "bad": _alarm("bad", T0, room=room)},
        records=[RecordWrite(record=attrs.evolve(_record("s1"), room=room))],
    )


async def test_sqlite_a_commit_failing_part_way_writes_nothing(tmp_path: Path) -> None:
    """A commit whose alarm SQLite refuses raises StorageError and leaves nothing of itself."""
    path = tmp_path / "rooms.db"
    async with open_backend(SqliteStorage(path)) as storage:
        await storage.put("lobby", "old", b"kept")
        _refuse_alarm(path, "bad")
        before = await _snapshot(storage)
        with pytest.raises(StorageError, match="refused by trigger"):
            await storage.commit(_failing_commit())
        assert await _snapshot(storage) == before
        assert await storage.get("lobby", "old") == b"kept"
        assert await storage.next_alarms(5) == []


async def test_sqlite_a_failing_commit_does_not_fail_the_commits_batched_with_it(
    tmp_path: Path,
) -> None:
    """Of 20 concurrent commits the one SQLite refuses fails alone and leaves nothing."""
    path = tmp_path / "rooms.db"
    async with open_backend(SqliteStorage(path)) as storage:
        _refuse_alarm(path, "bad")
        failed: list[int] = []

        async def run(n: int) -> None:
            room = f"room-{n}"
            commit = (
                _failing_commit(room)
                if n == 7
                else Commit(
                    room=room,
                    values={"a": b"%d" % n},
                    alarms={"t": _alarm("t", T0 + n, room=room)},
                )
            )
            try:
                await storage.commit(commit)
            except StorageError:
                failed.append(n)

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(run, n)
        assert failed == [7]
        for n in range(20):
            assert await storage.get(f"room-{n}", "a") == (None if n == 7 else b"%d" % n)
        assert await storage.load_alarms("room-7") == []
        assert await storage.load_session("room-7", "s1") is None
        assert len(await storage.next_alarms(100)) == 19


# ------------------------------------------------------------------------- Redis


@pytest.fixture
async def redis_storage(redis_server: RedisServer) -> AsyncGenerator[RedisStorage]:
    async with open_backend(RedisStorage(redis_server.url)) as backend:
        assert isinstance(backend, RedisStorage)
        yield backend


@EVERY_URL
async def test_redis_commits_land_whole_over_every_kind_of_url(redis_storage: RedisStorage) -> None:
    """Over redis://, unix:// and rediss:// alike, a commit writes its values, alarms and
    records together."""
    await test_a_commit_writes_values_deletes_alarms_cancels_and_records_together(redis_storage)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncGenerator[coredis.Redis[bytes]]:
    """A plain client, to look at and spoil what the storage wrote."""
    client = coredis.Redis.from_url(redis_server.url)
    async with client:
        yield client


async def test_redis_a_commit_whose_script_fails_writes_nothing(
    redis_storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """A record the script cannot read, or a key of another type, fails the commit whole."""
    storage = redis_storage
    await storage.put("lobby", "old", b"kept")
    # A record the compare-and-set cannot parse: it comes last in the commit.
    await redis.set(b"trio_rooms:session:lobby:s3", b"not a record")
    before = await _snapshot(storage)
    commit = Commit(
        room="lobby",
        values={"a": b"1", "old": None},
        alarms={"fine": _alarm("fine", T0)},
        records=[
            RecordWrite(record=_record("s1")),
            RecordWrite(record=_record("s3"), expected_token_hash=b"h"),
        ],
    )
    with pytest.raises(StorageError, match="unexpected session record"):
        await storage.commit(commit)
    assert await _snapshot(storage) == before
    assert await storage.next_alarms(5) == []
    # The queue holds something else: the alarms would fail after the values.
    await redis.delete([b"trio_rooms:session:lobby:s3"])
    await redis.set(b"trio_rooms:alarm-queue", b"not a sorted set")
    with pytest.raises(StorageError, match="expected a zset"):
        await storage.commit(commit)
    with pytest.raises(StorageError, match="expected a zset"):
        await storage.replace_alarm(_alarm("fine", T0), None)
    assert await _snapshot(storage) == before


async def test_redis_a_commit_on_a_log_of_another_type_writes_nothing(
    redis_storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """The log's ZADD, the commit's first write, is its check of the log's type too."""
    storage = redis_storage
    await storage.put("lobby", "old", b"kept")
    await redis.set(b"trio_rooms:fence:lobby", b"3")
    await redis.set(b"trio_rooms:replay:lobby", b"not a sorted set")
    before = await _snapshot(storage)
    commit = Commit(
        room="lobby",
        values={"a": b"1", "old": None},
        alarms={"fine": _alarm("fine", T0)},
        records=[RecordWrite(record=_record("s1"))],
        frames=[LoggedFrame(seq, b"frame") for seq in range(1, 1200)],  # 3 ZADDs
        keep_frames=2000,
        fence=4,
    )
    with pytest.raises(StorageError, match="WRONGTYPE"):
        await storage.commit(commit)
    assert await _snapshot(storage) == before
    assert await storage.next_alarms(5) == []
    assert await redis.get(b"trio_rooms:fence:lobby") == b"3"
    await redis.delete([b"trio_rooms:replay:lobby"])
    assert await storage.commit(commit) == [True]
    assert [frame.seq for frame in await storage.load_frames("lobby")] == list(range(1, 1200))
    assert await redis.get(b"trio_rooms:fence:lobby") == b"4"
    # At the room's fence, as most commits are: the frames land, the fence is not written.
    later = Commit(room="lobby", frames=[LoggedFrame(1200, b"f")], keep_frames=2000, fence=4)
    await redis.config_resetstat()
    assert await storage.commit(later) == []
    counted = await redis.info("commandstats")
    assert "cmdstat_evalsha" in counted
    assert "cmdstat_set" not in counted
    assert len(await storage.load_frames("lobby")) == 1200
    assert await redis.get(b"trio_rooms:fence:lobby") == b"4"


async def test_redis_a_failing_commit_does_not_fail_the_commits_sent_with_it(
    redis_storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """Of 20 concurrent commits the one whose script fails fails alone and leaves nothing."""
    storage = redis_storage
    await redis.set(b"trio_rooms:session:room-7:s1", b"not a record")
    failed: list[int] = []

    async def run(n: int) -> None:
        room = f"room-{n}"
        record = attrs.evolve(_record("s1"), room=room)
        commit = Commit(
            room=room,
            values={"a": b"%d" % n},
            alarms={"t": _alarm("t", T0 + n, room=room)},
            records=[RecordWrite(record=record, expected_token_hash=b"h")],
        )
        try:
            assert await storage.commit(commit) == [True]
        except StorageError:
            failed.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(run, n)
    assert failed == [7]
    for n in range(20):
        assert await storage.get(f"room-{n}", "a") == (None if n == 7 else b"%d" % n)
    assert await storage.load_alarms("room-7") == []
    assert len(await storage.next_alarms(100)) == 19


ADVERSARIAL_NAMES = ["", ":", " ", "a b", "lobby x", "alarm-queue", "\x00", "\ud800", "n" * 5000]


async def test_redis_alarm_names_of_any_characters_stay_apart_under_the_prefix(
    redis_server: RedisServer, redis: coredis.Redis[bytes]
) -> None:
    """Alarm names that look like keys or entries round-trip, all keys under the prefix."""
    async with open_backend(RedisStorage(redis_server.url, prefix="app:")) as storage:
        alarms = [
            _alarm(name, T0 + index, room=room)
            for index, name in enumerate(ADVERSARIAL_NAMES)
            for room in ("lobby", "lobby.x")
        ]
        await _set_alarms(storage, *alarms)
        assert await storage.next_alarms(100) == sorted(
            alarms, key=lambda a: (a.at, a.room, a.name)
        )
        assert await storage.load_alarms("lobby.x") == [a for a in alarms if a.room == "lobby.x"]
        assert sorted(await redis.keys()) == [
            b"app:alarm-queue",
            b"app:alarms:lobby",
            b"app:alarms:lobby.x",
        ]
        async with open_backend(RedisStorage(redis_server.url)) as other:
            assert await other.next_alarms(100) == []
        for alarm in alarms:
            assert await storage.replace_alarm(alarm, None)
        assert await redis.keys() == set()
