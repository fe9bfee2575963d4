from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
import trio

import trio_rooms
from trio_rooms import Rooms, RoomsConfig

from .chat_app import ChatRoom


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig()


@pytest.fixture
async def rooms(config: RoomsConfig) -> AsyncGenerator[Rooms[ChatRoom]]:
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
        yield rooms


@pytest.fixture
async def port(rooms: Rooms[ChatRoom], nursery: trio.Nursery) -> int:
    """The embedded server on 127.0.0.1, on a free port."""
    bound: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    return bound
