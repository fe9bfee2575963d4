"""`FencedStorage` on SQLite and Redis: a writer token per room, checked by every write.

Each test opens two storage objects on one SQLite file (two connections, as two
processes have) or one redis-server: what one raises, the other's writes meet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import coredis
import pytest
import trio

from trio_rooms import OwnershipLostError
from trio_rooms.backplane._lease_scripts import fence_key
from trio_rooms.storage import (
    Commit,
    FencedStorage,
    LoggedFrame,
    MemoryStorage,
    RecordWrite,
    SessionRecord,
    SqliteStorage,
    StoredAlarm,
)
from trio_rooms.storage import sqlite as sqlite_module
from trio_rooms.storage.redis import RedisStorage

from .redis_server import RedisServer

_Both = SqliteStorage | RedisStorage


@pytest.fixture(params=["sqlite", "redis"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncGenerator[tuple[_Both, _Both]]:
    """Two storages on one SQLite file, or on one redis-server, opened."""
    make: Callable[[], _Both]
    if request.param == "sqlite":
        path = tmp_path / "rooms.db"

        def make() -> _Both:
            return SqliteStorage(path)
    else:
        url = request.getfixturevalue("redis_server").url

        def make() -> _Both:
            return RedisStorage(url)

    async with AsyncExitStack() as stack:
        opened: list[_Both] = []
        for _ in range(2):
            storage = make()
            await storage.open()
            stack.push_async_callback(storage.aclose)
            opened.append(storage)
        yield opened[0], opened[1]


def _record(session_id: str, token_hash: bytes = b"h", data: bytes = b"{}") -> SessionRecord:
    return SessionRecord(
        room="x",
        session_id=session_id,
        data=data,
        wire="json",
        token_hash=token_hash,
        expires_at=9e9,
    )


def _alarm(name: str, at: float = 1.0, attempt: int = 0) -> StoredAlarm:
    return StoredAlarm(room="x", name=name, at=at, attempt=attempt)


def _everything(fence: int, value: bytes) -> Commit:
    """A commit of room x that writes one of every kind, with ``fence``."""
    return Commit(
        room="x",
        values={"k": value},
        alarms={"a": _alarm("a", at=float(fence))},
        records=[RecordWrite(record=_record("s1", data=value))],
        frames=[LoggedFrame(fence, value)],
        keep_frames=10,
        fence=fence,
    )


def test_sqlite_and_redis_are_fenced_storages_and_memory_is_not() -> None:
    """The registry finds `raise_fence` at run time: the shared backends have it."""
    assert isinstance(SqliteStorage("unused.db"), FencedStorage)
    assert isinstance(RedisStorage("redis://127.0.0.1:1"), FencedStorage)
    assert not isinstance(MemoryStorage(), FencedStorage)


async def test_raise_fence_counts_up_per_room_across_processes(pair: tuple[_Both, _Both]) -> None:
    """Each raise returns one more than the last, whoever raised it; rooms count apart."""
    first, second = pair
    assert await first.raise_fence("x") == 1
    assert await second.raise_fence("x") == 2
    assert await first.raise_fence("x") == 3
    assert await second.raise_fence("y") == 1


async def test_a_write_below_the_fence_is_refused_and_writes_nothing(
    pair: tuple[_Both, _Both],
) -> None:
    """A commit with a token below the room's fence raises OwnershipLostError, and none of
    its values, alarms, records or frames is stored."""
    old, new = pair
    await old.commit(_everything(await old.raise_fence("x"), b"old"))
    token = await new.raise_fence("x")
    with pytest.raises(OwnershipLostError) as caught:
        await old.commit(_everything(token - 1, b"lost"))
    assert (caught.value.room, caught.value.token, caught.value.fence) == ("x", token - 1, token)
    assert await new.get("x", "k") == b"old"
    assert await new.load_alarms("x") == [_alarm("a", at=1.0)]
    stored = await new.load_session("x", "s1")
    assert stored is not None
    assert stored.data == b"old"
    assert await new.load_frames("x") == [LoggedFrame(1, b"old")]


async def test_writes_at_or_above_the_fence_land_and_above_raises_it(
    pair: tuple[_Both, _Both],
) -> None:
    """A commit at the fence is written; one above it is written and raises the fence,
    so the token that was at the fence is refused from then on."""
    first, second = pair
    token = await first.raise_fence("x")
    await first.commit(Commit(room="x", values={"k": b"at"}, fence=token))
    assert await second.get("x", "k") == b"at"
    await second.commit(Commit(room="x", values={"k": b"above"}, fence=token + 1))
    with pytest.raises(OwnershipLostError):
        await first.commit(Commit(room="x", values={"k": b"again"}, fence=token))
    assert await first.get("x", "k") == b"above"
    assert await first.raise_fence("x") == token + 2


async def test_an_unfenced_write_is_never_refused(pair: tuple[_Both, _Both]) -> None:
    """Fence 0 (a storage not used as a `FencedStorage`) writes whatever the fence."""
    first, second = pair
    await first.raise_fence("x")
    await second.commit(Commit(room="x", values={"k": b"unfenced"}))
    await second.delete_session("x", "nobody")
    assert await first.get("x", "k") == b"unfenced"


async def test_claims_deletions_and_alarm_moves_below_the_fence_change_nothing(
    pair: tuple[_Both, _Both],
) -> None:
    """The writes outside a commit check the fence too, in the same atomic step."""
    old, new = pair
    token = await old.raise_fence("x")
    await old.commit(
        Commit(room="x", alarms={"a": _alarm("a")}, records=[RecordWrite(record=_record("s1"))])
    )
    await new.raise_fence("x")
    with pytest.raises(OwnershipLostError):
        await old.claim_session(
            "x", "s1", token_hash=b"h", new_token_hash=b"n", expires_at=9e9, fence=token
        )
    with pytest.raises(OwnershipLostError):
        await old.delete_session("x", "s1", fence=token)
    with pytest.raises(OwnershipLostError):
        await old.replace_alarm(_alarm("a"), _alarm("a", at=2.0, attempt=1), fence=token)
    with pytest.raises(OwnershipLostError):
        await old.replace_alarm(_alarm("a"), None, fence=token)
    assert await new.load_session("x", "s1") == _record("s1")
    assert await new.load_alarms("x") == [_alarm("a")]
    # The new writer's token passes the same checks.
    claimed = await new.claim_session(
        "x", "s1", token_hash=b"h", new_token_hash=b"n", expires_at=9e9, fence=token + 1
    )
    assert claimed is not None
    assert claimed.token_hash == b"n"
    assert await new.replace_alarm(_alarm("a"), None, fence=token + 1)
    await new.delete_session("x", "s1", fence=token + 1)
    assert await old.load_session("x", "s1") is None


async def test_redis_raises_the_fence_the_clusters_leases_count_in(
    redis_server: RedisServer,
) -> None:
    """`RedisStorage.raise_fence` INCRs the lease's fence key, under the storage's prefix:
    tokens stay comparable if the deployment moves to ``cluster=``."""
    storage = RedisStorage(redis_server.url, prefix="app:")
    await storage.open()
    try:
        await storage.raise_fence("x")
        assert await storage.raise_fence("x") == 2
    finally:
        await storage.aclose()
    redis = coredis.Redis.from_url(redis_server.url)
    async with redis:
        assert await redis.get(fence_key("app:", "x")) == b"2"
        assert await redis.get(fence_key("trio_rooms:", "x")) is None


async def test_sqlite_refuses_a_fenced_write_alone_in_a_group_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes group-committed with a refused one land: it fails in its own savepoint."""
    applied: list[tuple[str, int] | None] = []
    apply = sqlite_module._apply  # pyright: ignore[reportPrivateUsage] - what is watched

    def watched(db: sqlite3.Connection, write: sqlite_module._Write) -> None:  # pyright: ignore[reportPrivateUsage]
        applied.append(write.fence)
        apply(db, write)

    monkeypatch.setattr(sqlite_module, "_apply", watched)
    path = tmp_path / "rooms.db"
    old, new = SqliteStorage(path), SqliteStorage(path)
    await old.open()
    await new.open()
    try:
        token = await old.raise_fence("x")
        await new.raise_fence("x")
        refused: list[OwnershipLostError] = []

        async def refused_commit() -> None:
            with pytest.raises(OwnershipLostError) as caught:
                await old.commit(Commit(room="x", values={"lost": b"1"}, fence=token))
            refused.append(caught.value)

        async with trio.open_nursery() as nursery:
            # The first write is committed alone; the two behind it, together.
            nursery.start_soon(old.commit, Commit(room="y", values={"first": b"1"}))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(refused_commit)
            nursery.start_soon(old.commit, Commit(room="z", values={"after": b"1"}, fence=1))
        assert len(refused) == 1
        # In either order: trio does not promise which of two new tasks runs first.
        assert sorted(applied, key=repr) == [("x", token), ("z", 1)]
        assert await new.get("y", "first") == b"1"
        assert await new.get("z", "after") == b"1"
        assert await new.get("x", "lost") is None
    finally:
        await old.aclose()
        await new.aclose()


async def test_sqlite_migrates_a_version_3_file_and_fences_its_rooms(tmp_path: Path) -> None:
    """A schema 3 file keeps what it holds and gains the fences, as version 4."""
    path = tmp_path / "rooms.db"
    storage = SqliteStorage(path)
    await storage.open()
    await storage.put("x", "k", b"kept")
    await storage.aclose()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE fences")
        db.execute("PRAGMA user_version = 3")
    db.close()
    again = SqliteStorage(path)
    await again.open()
    try:
        assert await again.get("x", "k") == b"kept"
        assert await again.raise_fence("x") == 1
        assert await again.raise_fence("x") == 2
        with pytest.raises(OwnershipLostError):
            await again.commit(Commit(room="x", values={"k": b"lost"}, fence=1))
        assert await again.get("x", "k") == b"kept"
    finally:
        await again.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
    db.close()
