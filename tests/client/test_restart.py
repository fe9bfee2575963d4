"""Reconnect across a server restart on the same SQLite file, and the offline queue."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from trio_rooms import ConnectionClosedError
from trio_rooms.client import (
    ClientQueueFullError,
    Reconnected,
    ReconnectPolicy,
    RoomClient,
    open_room_client,
)

from ..durability_app import Get, Put, Stored, open_server

FAST = ReconnectPolicy(initial_delay=0.02, max_delay=0.2)


async def _kill(process: trio.Process, client: RoomClient[Stored, Put | Get]) -> None:
    """Kill the server and wait until the client has noticed the drop."""
    process.kill()
    await process.wait()
    with trio.fail_after(10):
        await client.wait_disconnected()
    assert not client.connected


async def test_reconnect_after_a_restart_resumes_the_session(tmp_path: Path) -> None:
    """Killed and restarted on the same file, the server gives back the same session and data;
    messages sent meanwhile wait in the bounded queue and are delivered in order."""
    path = tmp_path / "counter.db"
    async with open_server(path) as (process, port):
        url = f"ws://127.0.0.1:{port}/rooms/counter/websocket"
        async with open_room_client(url, (Stored,), (Put, Get), reconnect=FAST, max_queued=3) as c:
            first = c.session_id
            assert first is not None
            c.send(Put(value=5))
            assert await c.receive() == Stored(value=5)

            await _kill(process, c)
            c.send(Get())
            c.send(Put(value=6))
            c.send(Get())
            with pytest.raises(ClientQueueFullError) as full:
                c.send(Get())
            assert full.value.limit == 3

            async with open_server(path, port):
                event = await c.events.receive()
                assert isinstance(event, Reconnected)
                assert (event.code, event.resumed) == (1006, True)
                assert event.session_id == event.previous_session_id == first
                assert c.session_id == first
                assert [await c.receive() for _ in range(3)] == [
                    Stored(value=5),
                    Stored(value=6),
                    Stored(value=6),
                ]


async def test_the_client_gives_up_after_max_attempts(tmp_path: Path) -> None:
    """With the server gone for good, receive raises once the attempts are spent."""
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3)
    async with open_server(tmp_path / "counter.db") as (process, port):
        url = f"ws://127.0.0.1:{port}/rooms/counter/websocket"
        async with open_room_client(url, (Stored,), (Put, Get), reconnect=policy) as client:
            await _kill(process, client)
            with pytest.raises(ConnectionClosedError, match="after 3 attempts") as closed:
                await client.receive()
            assert closed.value.code == 1006
            assert isinstance(closed.value.__cause__, OSError)
