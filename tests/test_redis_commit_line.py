"""`RedisStorage.commit` on its own pipelined RESP connection, against a real redis-server.

The fault battery of test_redis_storage.py (Redis killed, hung, restarted, a silent
connection, a cancelled caller) runs on commits too; here: replies matched to their
commits when many rooms commit at once, a commit cancelled between its write and its
reply, and a Redis that forgot the script.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncGenerator

import coredis
import pytest
import trio
import trio.testing

from trio_rooms.storage import Commit, RecordWrite, SessionRecord
from trio_rooms.storage.redis import RedisStorage

from .redis_server import RedisServer

ROOMS = 40


def _record(room: str, token_hash: bytes = b"h") -> SessionRecord:
    return SessionRecord(
        room=room, session_id="s", data=b"{}", wire="json", token_hash=token_hash, expires_at=9e9
    )


def _replace(room: str, expected: bytes) -> Commit:
    """Write the session of ``room`` with the token hash ``new`` if it holds ``expected``."""
    write = RecordWrite(record=_record(room, b"new"), expected_token_hash=expected)
    return Commit(room=room, records=[write], fence=1)


@pytest.fixture
async def storage(redis_server: RedisServer) -> AsyncGenerator[RedisStorage]:
    backend = RedisStorage(redis_server.url, timeout=5.0)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncGenerator[coredis.Redis[bytes]]:
    client = coredis.Redis.from_url(redis_server.url)
    async with client:
        yield client


async def _commit_connections(redis: coredis.Redis[bytes]) -> int:
    listed = await redis.client_list()
    return sum(1 for client in listed if client.get("name") == "trio_rooms.commits")


async def test_commits_of_many_rooms_at_once_each_get_their_own_reply(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """Concurrent commits share one connection and each gets its own compare-and-set's answer."""
    for n in range(ROOMS):
        await storage.save_session(_record(f"r{n}"))
    results: dict[int, list[bool]] = {}

    async def commit(n: int) -> None:
        # Every other one expects a token hash the record does not hold: refused.
        expected = b"h" if n % 2 else b"other"
        results[n] = list(await storage.commit(_replace(f"r{n}", expected)))

    async with trio.open_nursery() as nursery:
        for n in range(ROOMS):
            nursery.start_soon(commit, n)
    assert results == {n: [n % 2 == 1] for n in range(ROOMS)}
    for n in range(ROOMS):
        stored = await storage.load_session(f"r{n}", "s")
        assert stored is not None
        assert stored.token_hash == (b"new" if n % 2 else b"h")
    assert await _commit_connections(redis) == 1


async def test_a_commit_cancelled_before_its_reply_leaves_the_others_their_own(
    storage: RedisStorage, redis_server: RedisServer, redis: coredis.Redis[bytes]
) -> None:
    """A commit cancelled after its write is skipped by the next one, which gets its own reply."""
    await storage.save_session(_record("a"))
    await storage.save_session(_record("b"))
    await storage.commit(Commit(room="warm"))  # the line is connected
    process = redis_server.process
    assert process is not None
    answered: list[list[bool]] = []

    async def refused_then_cancelled(scope: trio.CancelScope) -> None:
        with scope:
            await storage.commit(_replace("a", b"other"))

    async def accepted() -> None:
        answered.append(list(await storage.commit(_replace("b", b"h"))))

    process.send_signal(signal.SIGSTOP)  # both are written, neither answered
    try:
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()
            nursery.start_soon(refused_then_cancelled, scope)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(accepted)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            process.send_signal(signal.SIGCONT)
    finally:
        process.send_signal(signal.SIGCONT)
    # Handed a's reply (the refusal), or tried again on a new connection after its first
    # try was applied, b would say False.
    assert answered == [[True]]
    stored = await storage.load_session("b", "s")
    assert stored is not None
    assert stored.token_hash == b"new"
    assert list(await storage.commit(_replace("a", b"h"))) == [True]
    assert await _commit_connections(redis) == 1


async def test_a_commit_after_redis_forgot_the_script_loads_it_again(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """After SCRIPT FLUSH (or a restart) the commit is sent whole once and then works."""
    await storage.save_session(_record("a"))
    assert list(await storage.commit(_replace("a", b"other"))) == [False]
    await redis.script_flush()
    assert list(await storage.commit(_replace("a", b"h"))) == [True]
    stored = await storage.load_session("a", "s")
    assert stored is not None
    assert stored.token_hash == b"new"


async def test_the_reply_of_a_commit_cancelled_alone_is_dropped_by_the_next(
    storage: RedisStorage, redis_server: RedisServer
) -> None:
    """A commit cancelled while Redis hangs leaves its late reply to be skipped, not taken."""
    await storage.save_session(_record("a"))
    await storage.save_session(_record("b"))
    await storage.commit(Commit(room="warm"))
    process = redis_server.process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        with trio.move_on_after(0.2) as scope:
            await storage.commit(_replace("a", b"other"))  # refused, once Redis runs
        assert scope.cancelled_caught
    finally:
        process.send_signal(signal.SIGCONT)
    assert list(await storage.commit(_replace("b", b"h"))) == [True]
