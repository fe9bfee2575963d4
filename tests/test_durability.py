"""An acknowledged update() survives SIGKILL of the server process; SIGTERM loses nothing."""

from __future__ import annotations

import random
import signal
import sqlite3
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
import trio_websocket

from trio_rooms.codec import JsonCodec

from .durability_app import Get, Put, Stored, open_server
from .sockets import open_client

client_codec = JsonCodec(Put, Get)
server_codec = JsonCodec(Stored)


@asynccontextmanager
async def _client(port: int, query: str) -> AsyncGenerator[trio_websocket.WebSocketConnection]:
    async with open_client(port, f"/rooms/counter/websocket?{query}") as (ws, _):
        yield ws


async def _token(ws: trio_websocket.WebSocketConnection) -> str:
    info = orjson.loads(await ws.get_message())["$session"]
    token: str = info["token"]
    return token


async def test_acknowledged_updates_survive_sigkill(tmp_path: Path) -> None:
    """Kill -9 at a random moment: every acknowledged value is stored, the file is intact."""
    path = tmp_path / "counter.db"
    rng = random.Random(20261127)
    token = ""
    acked = 0
    for _ in range(4):
        kill_after = rng.randint(1, 150)
        async with open_server(path) as (process, port):
            async with _client(port, f"resume={token}") as ws:
                token = await _token(ws)
                await ws.send_message(client_codec.encode(Get()).decode())
                stored = server_codec.decode(await ws.get_message())
                assert stored.value >= acked  # nothing acknowledged was lost
                acked = stored.value
                last = acked + kill_after
                try:
                    for value in range(acked + 1, last + 1):
                        await ws.send_message(client_codec.encode(Put(value=value)).decode())
                        if value == last:
                            process.send_signal(signal.SIGKILL)  # mid-flight: this one may be lost
                        reply = server_codec.decode(await ws.get_message())
                        assert reply == Stored(value=value)
                        acked = value
                except trio_websocket.ConnectionClosed:
                    pass
            await process.wait()
            assert process.returncode == -signal.SIGKILL
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    async with open_server(path) as (_, port), _client(port, f"resume={token}") as ws:
        token = await _token(ws)
        await ws.send_message(client_codec.encode(Get()).decode())
        assert server_codec.decode(await ws.get_message()).value >= acked


async def _read_until_closed(ws: trio_websocket.WebSocketConnection) -> None:
    while True:
        await ws.get_message()


async def test_sigterm_closes_with_1001_and_loses_nothing(tmp_path: Path) -> None:
    """A graceful stop sends 1001 and every acknowledged value is there after a restart."""
    path = tmp_path / "counter.db"
    async with open_server(path) as (process, port), _client(port, "resume=") as ws:
        token = await _token(ws)
        for value in range(1, 21):
            await ws.send_message(client_codec.encode(Put(value=value)).decode())
            assert server_codec.decode(await ws.get_message()) == Stored(value=value)
        process.send_signal(signal.SIGTERM)
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await _read_until_closed(ws)
        assert closed.value.reason is not None
        assert closed.value.reason.code == 1001
        await process.wait()
        assert process.returncode == 0
    async with open_server(path) as (_, port), _client(port, f"resume={token}") as ws:
        await _token(ws)
        await ws.send_message(client_codec.encode(Get()).decode())
        assert server_codec.decode(await ws.get_message()) == Stored(value=20)
