"""Rooms of a single-owner cluster opened and closed over and over, their hooks logged.

Every node of a test runs in its process (`serve_churn_rooms`), and all write one
`Hooks` log: the order in which ``on_start`` and ``on_stop`` ran on any node. A session
echoes, or is closed by its owner (`Quit`): what its client sent after is never handled.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .attack_app import LEASE_TTL

#: ``(room, hook, node)`` for each ``on_start`` and ``on_stop``, in the order they ran.
Hooks = list[tuple[str, str, str]]


@attrs.frozen
class Echo(Message):
    n: int


@attrs.frozen
class Quit(Message):
    """Ask the owner to close the session (4000) at once."""


@attrs.frozen
class Echoed(Message):
    n: int
    node: str


ChurnMsg = Echo | Quit


class ChurnSession(Session[None, Echoed, ChurnMsg, "ChurnRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: ChurnMsg) -> None:
        match message:
            case Echo(n=n):
                if self.room.quit:
                    self.room.after_quit.append(n)
                self.send(Echoed(n=n, node=self.room.node))
            case Quit():
                self.room.quit = True
                await self.close(4000, "asked to")
            case _:
                assert_never(message)


class ChurnRoom(Room[ChurnSession]):
    def __init__(self, name: str, node: str, hooks: Hooks) -> None:
        super().__init__(name)
        self.node = node
        self.hooks = hooks
        #: A session quit: the echoes handled after it (none may be its own).
        self.quit = False
        self.after_quit: list[int] = []

    async def on_start(self) -> None:
        self.hooks.append((self.name, "start", self.node))

    async def on_stop(self) -> None:
        self.hooks.append((self.name, "stop", self.node))


@asynccontextmanager
async def serve_churn_rooms(
    url: str, node: str, hooks: Hooks, config: trio_rooms.RoomsConfig
) -> AsyncGenerator[tuple[trio_rooms.Rooms[ChurnRoom], int]]:
    """Node ``node`` in this process, served on a free port: its rooms and the port."""
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            functools.partial(ChurnRoom, node=node, hooks=hooks),
            config=config,
            storage=RedisStorage(url),
            cluster=cluster,
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()
