"""Replay across nodes: with one owner per room, a resume on any node gets what it missed.

Two nodes in this process on one real redis-server (`RedisStorage` and `RedisCluster`),
the room's log in Redis. A client relayed through one node resumes on the other, and
after the owner has shut down and the other node has taken the room over.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
import trio_websocket

import trio_rooms
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .redis_server import RedisServer
from .replay_app import NoteRoom
from .sockets import open_client

pytestmark = pytest.mark.slow

LEASE_TTL = 1.5
#: Bounds every wait: a few lease TTLs.
PATIENCE = 20.0
ROOM = "/rooms/r/websocket"


class NodeRoom(NoteRoom):
    def __init__(self, name: str, *, node: str) -> None:
        super().__init__(name)
        self.node = node


@asynccontextmanager
async def _node(url: str, node: str) -> AsyncGenerator[tuple[trio_rooms.Rooms[NodeRoom], int]]:
    """Node ``node`` served on a free port: its rooms and the port."""
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            functools.partial(NodeRoom, node=node), storage=RedisStorage(url), cluster=cluster
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def _frame(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    content: dict[str, Any] = orjson.loads(await ws.get_message())
    return content


async def _notes(ws: trio_websocket.WebSocketConnection, first: int, count: int) -> None:
    assert [(await _frame(ws))["n"] for _ in range(count)] == list(range(first, first + count))


async def _wait_closes(room: NoteRoom, count: int) -> None:
    with trio.fail_after(PATIENCE):
        await room.wait_closes(count)


async def test_a_relayed_client_that_resumes_on_the_owner_gets_exactly_what_it_missed(
    redis_server: RedisServer,
) -> None:
    """Dropped from node b (relayed), resumed on node a (the owner): the missed notes in
    order, none twice, then live ones; and back on node b the same."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with _node(url, "a") as (rooms_a, port_a), _node(url, "b") as (_, port_b):
            room = await rooms_a.get("r")  # node a owns the room
            async with open_client(port_b, f"{ROOM}?resume=&seen=0") as (ws, _):
                token = (await _frame(ws))["$session"]["token"]
                for _ in range(3):
                    room.note()
                await _notes(ws, 0, 3)
            await _wait_closes(room, 1)
            for _ in range(50):
                room.note()
            async with open_client(port_a, f"{ROOM}?resume={token}&seen=3") as (ws, _):
                session = (await _frame(ws))["$session"]
                assert (session["resumed"], session["replayed"]) == (True, 50)
                await _notes(ws, 3, 50)
                room.note()
                await _notes(ws, 53, 1)
                token = session["token"]
            await _wait_closes(room, 2)
            for _ in range(20):
                room.note()
            async with open_client(port_b, f"{ROOM}?resume={token}&seen=54") as (ws, _):
                session = (await _frame(ws))["$session"]
                assert (session["resumed"], session["replayed"]) == (True, 20)
                await _notes(ws, 54, 20)


async def test_missed_notes_are_replayed_by_the_node_that_takes_the_room_over(
    redis_server: RedisServer,
) -> None:
    """The owner logs notes and shuts down; the other node takes the room over and
    replays them from the log in Redis to a client that resumes there."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with _node(url, "b") as (rooms_b, port_b):
            async with _node(url, "a") as (rooms_a, port_a):
                room = await rooms_a.get("r")
                async with open_client(port_a, f"{ROOM}?resume=&seen=0") as (ws, _):
                    token = (await _frame(ws))["$session"]["token"]
                    room.note()
                    await _notes(ws, 0, 1)
                await _wait_closes(room, 1)
                for _ in range(30):
                    room.note()
                notes = room.notes
            # Node a released its lease on shutdown: node b owns the room from now on.
            moved = await rooms_b.get("r")
            assert moved.node == "b"
            moved.notes = notes
            async with open_client(port_b, f"{ROOM}?resume={token}&seen=1") as (ws, _):
                session = (await _frame(ws))["$session"]
                assert (session["resumed"], session["replayed"]) == (True, 30)
                await _notes(ws, 1, 30)
                moved.note()
                await _notes(ws, 31, 1)
