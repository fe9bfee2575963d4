from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
import trio

import trio_rooms
from trio_rooms import Rooms, RoomsConfig

from .chat_app import ChatRoom
from .redis_server import redis_server as redis_server  # the fixture, for every module
from .servers import TRANSPORTS, Transport, start_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "embedded_only(reason): the test needs the embedded server (raw frames, keepalive, "
        "its handshake); it is not run behind hypercorn",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses a server once per transport, unless marked embedded_only."""
    if "transport" in metafunc.fixturenames:
        embedded_only = metafunc.definition.get_closest_marker("embedded_only") is not None
        transports = ["embedded"] if embedded_only else list(TRANSPORTS)
        metafunc.parametrize("transport", transports, indirect=True)


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> Transport:
    """The transport the server of this test runs: the embedded one, or hypercorn (ASGI)."""
    name: Transport = request.param
    return name


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig()


@pytest.fixture
async def rooms(config: RoomsConfig) -> AsyncGenerator[Rooms[ChatRoom]]:
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
        yield rooms


@pytest.fixture
async def port(rooms: Rooms[ChatRoom], nursery: trio.Nursery, transport: Transport) -> int:
    """A server for ``rooms`` on 127.0.0.1, on a free port, over ``transport``."""
    return await start_server(nursery, transport, rooms)
