from __future__ import annotations

import pytest
import trio

from trio_rooms.demo.app import serve_demo


@pytest.fixture
async def demo_ports(nursery: trio.Nursery) -> tuple[int, int]:
    """The demo on 127.0.0.1: (HTTP port, WebSocket port), both free ones."""
    ports: tuple[int, int] = await nursery.start(serve_demo, "127.0.0.1", 0, 0)
    return ports


@pytest.fixture
def http_port(demo_ports: tuple[int, int]) -> int:
    return demo_ports[0]


@pytest.fixture
def ws_port(demo_ports: tuple[int, int]) -> int:
    return demo_ports[1]
