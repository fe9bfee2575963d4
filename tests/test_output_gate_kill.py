"""kill -9 of the server never leaves the stored state behind what any client saw."""

from __future__ import annotations

import random
import signal
import sqlite3
from pathlib import Path

import trio
import trio_websocket

from trio_rooms.codec import JsonCodec

from .gates_app import Counted, Increment, IncrementOutside, Read, open_server
from .sockets import open_client

client_codec = JsonCodec(Increment, IncrementOutside, Read)
server_codec = JsonCodec(Counted)
CLIENTS = 3
ROUNDS = 4


async def _read(port: int) -> int:
    async with open_client(port, "/rooms/counter/websocket") as (ws, _):
        await ws.send_message(client_codec.encode(Read()).decode())
        reply = server_codec.decode(await ws.get_message())
        assert isinstance(reply, Counted)
        return reply.n


class Seen:
    """Every counter value the clients saw; `enough` is set at ``kill_after`` of them."""

    def __init__(self, kill_after: int) -> None:
        self.values: list[int] = []
        self.kill_after = kill_after
        self.enough = trio.Event()

    def add(self, value: int) -> None:
        self.values.append(value)
        if len(self.values) >= self.kill_after:
            self.enough.set()


async def _hammer(port: int, seen: Seen, rng: random.Random) -> None:
    """Send increments as fast as replies come back; record every counter value seen."""
    messages = [client_codec.encode(IncrementOutside()).decode()] * 3
    messages.append(client_codec.encode(Increment()).decode())
    try:
        async with open_client(port, "/rooms/counter/websocket") as (ws, _):
            while True:
                for _ in range(rng.randint(1, 8)):  # a few in flight at once
                    await ws.send_message(rng.choice(messages))
                    reply = server_codec.decode(await ws.get_message())
                    assert isinstance(reply, Counted)
                    seen.add(reply.n)
    except* (trio_websocket.ConnectionClosed, trio_websocket.HandshakeError, OSError):
        pass  # the server was killed


async def test_no_client_ever_sees_a_write_that_kill_9_then_loses(tmp_path: Path) -> None:
    """Seeded kills mid-burst: after each restart the counter is at least what anyone saw."""
    path = tmp_path / "gates.db"
    rng = random.Random(20261201)
    stored = 0
    for _ in range(ROUNDS):
        seen = Seen(kill_after=rng.randint(20, 300))
        async with open_server(path) as (process, port):
            assert await _read(port) >= stored
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for index in range(CLIENTS):
                        nursery.start_soon(_hammer, port, seen, random.Random(index))
                    await seen.enough.wait()
                    process.send_signal(signal.SIGKILL)  # mid-burst
            await process.wait()
            assert process.returncode == -signal.SIGKILL
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        async with open_server(path) as (_, port):
            stored = await _read(port)
        assert stored >= max(seen.values), (stored, max(seen.values))
