"""The chat app for the burst tests: many clients from one address, over either transport.

Run as ``python -m tests.burst_app TRANSPORT`` (``embedded`` or ``hypercorn``): serves
`tests.chat_app` on 127.0.0.1 on a free port and prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import signal
import sys
from contextlib import AbstractAsyncContextManager

import hypercorn.trio
import trio

import trio_rooms

from .chat_app import ChatRoom
from .processes import open_server_process, serve_until_signalled

#: Every client of the burst tests connects from 127.0.0.1.
MAX_CLIENTS = 2_000


def burst_config() -> trio_rooms.RoomsConfig:
    # A stalled client is drained by the test only after the burst: give its close frame
    # time to get through (the default 5 s could cut the close short on a loaded box).
    return trio_rooms.RoomsConfig(
        max_connections_per_address=MAX_CLIENTS, max_connections=MAX_CLIENTS, close_timeout=30.0
    )


async def main(transport: str) -> None:
    async with trio_rooms.open_rooms(ChatRoom, config=burst_config()) as rooms:
        if transport == "embedded":
            await serve_until_signalled(rooms, 0)
            return
        config = trio_rooms.hypercorn_config(rooms.config, "127.0.0.1:0")
        config.backlog = MAX_CLIENTS
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                hypercorn.trio.serve, trio_rooms.bind_asgi(rooms), config
            )
            print(f"PORT {binds[0].rpartition(':')[2]}", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break


if __name__ == "__main__":
    trio.run(main, sys.argv[1])


def open_server(transport: str) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """This server as a subprocess over ``transport``: yields it and its bound port."""
    return open_server_process("tests.burst_app", transport)
