"""Two single-node servers on one storage: the room's newest copy is its only writer.

Real processes (`tests.writer_app`, no ``cluster=``, no backplane) on one real SQLite
file or one real redis-server; raw WebSocket clients on real sockets.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
import trio
import trio_websocket

import trio_rooms
from trio_rooms import OwnershipLostError, SqliteStorage
from trio_rooms.storage import Storage
from trio_rooms.storage.redis import RedisStorage

from .redis_server import RedisServer
from .sockets import open_client
from .writer_app import WriterRoom, open_server

#: Bounds each test: process starts and a few round trips.
PATIENCE = 30.0
#: What the deposed server logs (once) when its write is refused.
TAKEN_OVER = b"another process took over this room's storage"

Kind = Literal["sqlite", "redis"]


@pytest.fixture(params=["sqlite", "redis"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The storage both servers share: a SQLite file, or a redis-server's URL."""
    kind: Kind = request.param
    if kind == "sqlite":
        return str(tmp_path / "rooms.db")
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@asynccontextmanager
async def _opened(where: str) -> AsyncGenerator[Storage]:
    """The shared storage, opened in the test to look at what was written."""
    storage = RedisStorage(where) if where.startswith("redis://") else SqliteStorage(where)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.aclose()


async def _frame(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    message = await ws.get_message()
    assert isinstance(message, str)
    frame: dict[str, Any] = orjson.loads(message)
    return frame


def _say(text: str) -> str:
    return orjson.dumps({"type": "say", "text": text}).decode()


def _said(text: str, server: str) -> dict[str, Any]:
    return {"type": "said", "text": text, "server": server}


async def _close_code(ws: trio_websocket.WebSocketConnection) -> int:
    """The code the server closes ``ws`` with next; fails if a message comes first."""
    try:
        message = await ws.get_message()
    except trio_websocket.ConnectionClosed as exc:
        return exc.reason.code if exc.reason is not None else 1006
    raise AssertionError(f"expected the server to close, got {message!r}")


async def _stderr_after_sigterm(process: trio.Process) -> bytes:
    """Stop a server gracefully and return everything it wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    chunks: list[bytes] = []
    while chunk := await process.stderr.receive_some():
        chunks.append(bytes(chunk))
    await process.wait()
    return b"".join(chunks)


async def test_the_room_started_last_deposes_the_older_copy_which_writes_nothing_more(
    where: str,
) -> None:
    """B starting room x deposes A's copy: A's next write is refused and stores nothing,
    A closes its sessions with 1012 and logs one ERROR, and A's client resumes on B
    replayed exactly B's log."""
    with trio.fail_after(PATIENCE):
        async with open_server("A", where) as (a, a_port), open_server("B", where) as (b, b_port):
            resource = "/rooms/x/websocket?resume=&seen=0"
            async with (
                open_client(a_port, resource) as (a1, _),
                open_client(a_port, resource) as (a2, _),
            ):
                token = (await _frame(a1))["$session"]["token"]
                await _frame(a2)
                await a1.send_message(_say("from A"))
                assert await _frame(a1) == _said("from A", "A")
                assert await _frame(a2) == _said("from A", "A")
                async with open_client(b_port, resource) as (b1, _):
                    await _frame(b1)  # $session: B's copy of x has started
                    await b1.send_message(_say("from B"))
                    assert await _frame(b1) == _said("from B", "B")
                    # A's copy has not heard of B: its next write is refused, nothing it
                    # held behind it is sent, and every session of it is closed.
                    await a1.send_message(_say("lost on A"))
                    assert await _close_code(a1) == 1012
                    assert await _close_code(a2) == 1012
            async with _opened(where) as storage:
                last = await storage.get("x", "last")
                assert last == b'"from B"'
                logged = [frame.data for frame in await storage.load_frames("x")]
                for text, count in ((b"from A", 1), (b"from B", 1), (b"lost on A", 0)):
                    assert sum(text in data for data in logged) == count, (text, logged)
            # a1 had received one message; it misses B's only, from the one log there is.
            async with open_client(b_port, f"/rooms/x/websocket?resume={token}&seen=1") as (
                again,
                _,
            ):
                session = (await _frame(again))["$session"]
                assert (session["resumed"], session["replayed"]) == (True, 1)
                assert await _frame(again) == _said("from B", "B")
            a_log, b_log = await _stderr_after_sigterm(a), await _stderr_after_sigterm(b)
    assert a_log.count(TAKEN_OVER) == 1, a_log.decode(errors="replace")
    assert TAKEN_OVER not in b_log, b_log.decode(errors="replace")


async def test_in_one_process_two_rooms_blocks_on_one_file_fence_each_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same without a socket: the room started last takes the writer token, and the
    older copy's next write raises OwnershipLostError, storing nothing, logged once."""
    path = tmp_path / "rooms.db"
    old_storage, new_storage = SqliteStorage(path), SqliteStorage(path)
    async with trio_rooms.open_rooms(WriterRoom.named("A"), storage=old_storage) as old:
        old_room = await old.get("x")
        await old_room.storage.put("last", "old")
        await old_room.storage.flush()
        async with trio_rooms.open_rooms(WriterRoom.named("B"), storage=new_storage) as new:
            await new.get("x")
            await old_room.storage.put("last", "lost")
            with pytest.raises(OwnershipLostError):
                await old_room.storage.flush()
            new_room = await new.get("x")
            assert await new_room.storage.get("last", str) == "old"
            await new_room.storage.put("last", "new")
            await new_room.storage.flush()
    async with _opened(str(path)) as storage:
        assert await storage.get("x", "last") == b'"new"'
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [TAKEN_OVER.decode() in r.getMessage() for r in errors] == [True]
