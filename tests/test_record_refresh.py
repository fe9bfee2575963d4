"""A session's stored record stays resumable while it is connected, so a kill -9 loses it not.

A record is written when a session joins, at its `update()` and when it ends. Killed in
between, a server leaves only the first: these tests keep a session connected past each
bound that would make that record useless (the log's count, bytes and age, the resume
window), kill the server with SIGKILL, and resume on a new one from the same storage.
Those kept past a time bound wait on the record's rewrites, as Redis's keyspace events
tell them, not on a clock of their own.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import coredis
import orjson
import pytest
import trio
import trio_websocket

from trio_rooms.codec import JsonCodec

from .owner_app import open_relayed_client
from .redis_server import RedisServer
from .redis_witness import next_message, open_keyspace_events, session_key
from .sockets import open_client
from .stale_record_app import Burst, open_server
from .test_cluster_attacks import PATIENCE

client_codec = JsonCodec(Burst)


async def _frame(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        message = await ws.get_message()
    content: dict[str, Any] = orjson.loads(message)
    return content


async def _burst(ws: trio_websocket.WebSocketConnection, first: int, size: int = 0) -> None:
    """Have the room broadcast note ``first`` and read it back."""
    await ws.send_message(client_codec.encode(Burst(first=first, size=size)).decode())
    assert await _frame(ws) == {"type": "note", "n": first, "text": "x" * size}


Server = Callable[[], AbstractAsyncContextManager[tuple[trio.Process, int]]]


@asynccontextmanager
async def _killed_after(
    serve: Server,
) -> AsyncGenerator[tuple[trio_websocket.WebSocketConnection, dict[str, Any]]]:
    """A new resumable session on a server of ``serve``: its connection and its
    ``$session`` frame; the server is killed with SIGKILL at the block's end."""
    async with (
        serve() as (process, port),
        open_client(port, "/rooms/r/websocket?resume=&seen=0") as (ws, _),
    ):
        yield ws, (await _frame(ws))["$session"]
        process.send_signal(signal.SIGKILL)
        await process.wait()


async def _rewritten_past(redis_server: RedisServer, session_id: str, bound: float) -> None:
    """Wait for the rewrites of room ``r``'s record of ``session_id`` (keyspace ``set``
    events) until ``bound`` seconds have passed since the call: up to the first rewrite
    past it. Only the refresh writes it meanwhile (the session makes no `update()`), so
    without the refresh this fails with `trio.TooSlowError`."""
    key = session_key("r", session_id)
    async with (
        coredis.Redis.from_url(redis_server.url) as redis,
        open_keyspace_events(redis_server, redis, [key], "$") as events,
    ):
        start = trio.current_time()
        with trio.fail_after(bound + 10):
            while True:
                assert await next_message(events) == (b"__keyspace@0__:" + key, b"set")
                if trio.current_time() - start > bound:
                    return


async def _resumes_with_nothing_missed(serve: Server, token: str, seen: int) -> None:
    """On a new server: the token resumes, nothing is replayed, the next note is live."""
    async with (
        serve() as (_, port),
        open_client(port, f"/rooms/r/websocket?resume={token}&seen={seen}") as (ws, _),
    ):
        session = (await _frame(ws))["$session"]
        assert (session["resumed"], session["replayed"]) == (True, 0)
        await _burst(ws, seen)  # a `$resync` would come first


def _storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "redis":
        url: str = request.getfixturevalue("redis_server").url
        return url
    return str(tmp_path / "rooms.db")


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_session_sent_more_than_the_log_holds_resumes_without_a_resync(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Three times the log's count bound sent, then kill -9: the resume replays nothing."""
    serve = functools.partial(open_server, _storage(backend, tmp_path, request), max_messages=10)
    async with _killed_after(serve) as (ws, session):
        for n in range(30):
            await _burst(ws, n)
    await _resumes_with_nothing_missed(serve, session["token"], 30)


async def test_a_session_sent_more_bytes_than_the_log_holds_resumes_without_a_resync(
    tmp_path: Path,
) -> None:
    """Three times the log's byte bound sent, then kill -9: the resume replays nothing."""
    serve = functools.partial(open_server, str(tmp_path / "rooms.db"), max_bytes=4000)
    async with _killed_after(serve) as (ws, session):
        for n in range(12):
            await _burst(ws, n, size=1000)
    await _resumes_with_nothing_missed(serve, session["token"], 12)


@pytest.mark.slow
async def test_a_session_connected_past_the_logs_age_resumes_without_a_resync(
    redis_server: RedisServer,
) -> None:
    """A note, then more than the log's max_age until the next, then kill -9. On Redis,
    whose keyspace events show the record's rewrites (SQLite shows nothing to wait on)."""
    serve = functools.partial(open_server, redis_server.url, max_age=2.0)
    async with _killed_after(serve) as (ws, session):
        await _burst(ws, 0)
        # What is tested: time past the bound, with no write but the refresh's.
        await _rewritten_past(redis_server, session["id"], 2.0)
        await _burst(ws, 1)
    await _resumes_with_nothing_missed(serve, session["token"], 2)


@pytest.mark.slow
async def test_a_session_connected_past_its_resume_window_still_resumes(
    redis_server: RedisServer,
) -> None:
    """Connected longer than resume_window without a write, then kill -9: it resumes,
    with at least a resume window for its client to come back in. On Redis, as above."""
    serve = functools.partial(open_server, redis_server.url, resume_window=3.0)
    async with _killed_after(serve) as (ws, session):
        # What is tested: time past the window, with no write but the refresh's.
        await _rewritten_past(redis_server, session["id"], 3.0)
        await _burst(ws, 0)
    await _resumes_with_nothing_missed(serve, session["token"], 1)


@pytest.mark.slow
async def test_a_relayed_session_sent_more_than_the_log_holds_moves_without_a_resync(
    redis_server: RedisServer,
) -> None:
    """A relayed client sent 2.5 times the log's count bound, then its owner is killed:
    its session moves to the next owner with nothing to replay and no `$resync`."""
    url = redis_server.url
    with trio.fail_after(2 * PATIENCE):
        async with open_relayed_client(url, "resume=&seen=0") as (process_a, _, client, first):
            for _ in range(25):  # one event at a time: a refresh comes between two
                await client.send_text('{"type": "flood", "count": 100, "size": 0}')
                for _ in range(100):
                    assert orjson.loads(await client.receive_text())["type"] == "blob"
            process_a.kill()
            moved = orjson.loads(await client.receive_text())
            assert moved["$session"]["id"] == first["id"]
            assert (moved["$session"]["resumed"], moved["$session"]["replayed"]) == (True, 0)
            welcome = orjson.loads(await client.receive_text())  # not a `$resync`
            assert (welcome["type"], welcome["node"]) == ("welcome", "b")
