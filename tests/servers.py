"""Start ``Rooms`` behind each transport the behavioural tests run on."""

from __future__ import annotations

from typing import Any, Literal

import hypercorn.trio
import trio

import trio_rooms
from trio_rooms import Rooms

Transport = Literal["embedded", "hypercorn"]
TRANSPORTS: tuple[Transport, ...] = ("embedded", "hypercorn")


async def start_server(nursery: trio.Nursery, transport: Transport, rooms: Rooms[Any]) -> int:
    """Serve ``rooms`` on 127.0.0.1 on a free port in ``nursery``; return the port."""
    if transport == "embedded":
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        return port
    config = trio_rooms.hypercorn_config(rooms.config, "127.0.0.1:0")
    binds: list[str] = await nursery.start(
        hypercorn.trio.serve, trio_rooms.bind_asgi(rooms), config
    )
    return int(binds[0].rpartition(":")[2])


def client_close_code(transport: Transport, code: int) -> int:
    """The code ``on_close`` sees when the client closes with ``code``.

    Hypercorn reports every client-initiated close to the ASGI app as 1006
    (https://github.com/pgjones/hypercorn/issues/127).
    """
    return code if transport == "embedded" else 1006
