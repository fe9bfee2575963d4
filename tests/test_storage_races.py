"""Races on storage, single node: real SQLite files, a real Redis, real sockets.

Many sessions of one room doing get-then-put through ``room.storage`` (the input gate
makes every increment count); a server process killed right after an acknowledgement
(the value is there after the restart); a SQLite file deleted, replaced or locked by
another process under a running room (a clear StorageError, nothing acknowledged that
is not stored, the server lives on).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
import trio

import trio_rooms
from trio_rooms import (
    Rooms,
    RoomsConfig,
    SqliteStorage,
    StorageError,
)
from trio_rooms.storage import Storage

from .gated_storage import make_backend
from .sockets import RawClient, open_raw
from .storage_race_app import CounterRoom, open_server


@asynccontextmanager
async def _serving(storage: Storage) -> AsyncGenerator[tuple[Rooms[CounterRoom], int]]:
    config = RoomsConfig(rate_limit=None)
    async with (
        trio_rooms.open_rooms(CounterRoom, storage=storage, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def _increment(client: RawClient) -> int:
    await client.send_text('{"type":"increment"}')
    counted = orjson.loads(await client.receive_text())
    assert counted["type"] == "counted", counted
    value = counted["value"]
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_interleaved_get_and_put_of_many_sessions_lose_no_increment(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """20 sessions x 10 increments at once: every value 1..200 acknowledged once, 200 stored."""
    sessions, each = 20, 10
    storage = make_backend(backend, request, tmp_path)
    seen: list[int] = []
    async with _serving(storage) as (rooms, port):

        async def session() -> None:
            async with open_raw(port, "/rooms/counter/websocket") as client:
                # All sent before any answer is read: the room has them all to interleave.
                for _ in range(each):
                    await client.send_text('{"type":"increment"}')
                for _ in range(each):
                    counted = orjson.loads(await client.receive_text())
                    seen.append(counted["value"])

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(sessions):
                    nursery.start_soon(session)
        room = await rooms.get("counter")
        assert await room.storage.get("count", int) == sessions * each
    assert sorted(seen) == list(range(1, sessions * each + 1))


def _replace(path: Path) -> None:
    """Another database moved over ``path`` (as a restore from a backup would)."""
    other = path.with_name("other.db")
    subprocess.run(
        [sys.executable, "-c", f"import sqlite3; sqlite3.connect({str(other)!r}).close()"],
        check=True,
    )
    os.replace(other, path)


def _delete(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@pytest.mark.parametrize("lose", [_delete, _replace], ids=["deleted", "replaced"])
async def test_a_write_to_a_sqlite_file_gone_from_under_the_room_is_not_acknowledged(
    tmp_path: Path, lose: Callable[[Path], None]
) -> None:
    """The file is deleted or replaced: the write fails (1011), the server serves on."""
    path = tmp_path / "rooms.db"
    storage = SqliteStorage(path)
    with trio.fail_after(20):
        async with _serving(storage) as (_, port):
            async with open_raw(port, "/rooms/counter/websocket") as client:
                assert await _increment(client) == 1
                lose(path)
                await client.send_text('{"type":"increment"}')
                frames = await client.receive_until_eof()
                assert [frame.opcode for frame in frames] == [0x8], frames  # no "counted"
                assert frames[0].close_code == 1011
            with pytest.raises(StorageError, match="deleted or replaced"):
                await storage.put("counter", "count", b"5")
            # The server lives on: another room is answered, with 1011, as it cannot start
            # (its writer token, `SqliteStorage.raise_fence`, is a write that fails too).
            async with open_raw(port, "/rooms/other/websocket") as other:
                frames = await other.receive_until_eof()
                assert [(f.opcode, f.close_code) for f in frames] == [(0x8, 1011)], frames


_LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


async def test_a_sqlite_file_locked_by_another_process_fails_the_write_clearly(
    tmp_path: Path,
) -> None:
    """Another process holds the lock past the busy timeout: 1011, then writes work again."""
    path = tmp_path / "rooms.db"
    async with _serving(SqliteStorage(path)) as (_, port):
        async with open_raw(port, "/rooms/counter/websocket") as client:
            assert await _increment(client) == 1
            locker = await trio.lowlevel.open_process(
                [sys.executable, "-c", _LOCKER, str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            try:
                assert locker.stdout is not None
                assert locker.stdin is not None
                said = b""
                while not said.endswith(b"\n"):
                    said += await locker.stdout.receive_some(16)
                assert said == b"locked\n"
                await client.send_text('{"type":"increment"}')
                frames = await client.receive_until_eof()
                assert [frame.opcode for frame in frames] == [0x8], frames
                assert frames[0].close_code == 1011
                await locker.stdin.send_all(b"\n")
                assert await locker.wait() == 0
            finally:
                if locker.returncode is None:
                    locker.kill()
                    await locker.wait()
                for pipe in (locker.stdin, locker.stdout):
                    if pipe is not None:
                        await pipe.aclose()
        async with open_raw(port, "/rooms/counter/websocket") as client:
            assert await _increment(client) == 2  # the first write is there, the second not


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_an_increment_acknowledged_before_a_sigkill_is_there_after_the_restart(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The server process is killed right after an acknowledgement: that value is stored."""
    if backend == "redis":
        where = request.getfixturevalue("redis_server").url
    else:
        where = str(tmp_path / "rooms.db")
    acked = 0
    with trio.fail_after(60):
        for kill_after in (1, 7, 30):
            async with (
                open_server(where) as (process, port),
                open_raw(port, "/rooms/counter/websocket") as client,
            ):
                for _ in range(kill_after):  # sent at once: they commit in groups
                    await client.send_text('{"type":"increment"}')
                for _ in range(kill_after):
                    counted = orjson.loads(await client.receive_text())
                    assert counted["value"] == acked + 1
                    acked += 1
                process.kill()  # SIGKILL, right after the last acknowledgement
                await process.wait()
        async with (
            open_server(where) as (_, port),
            open_raw(port, "/rooms/counter/websocket") as client,
        ):
            assert await _increment(client) == acked + 1
