"""One node of a two-node deployment: the chat app on Redis storage and backplane.

Run as ``python -m tests.cluster_app REDIS_URL [PORT]``: serves `tests.chat_app` on
127.0.0.1 (PORT 0 or none: a free port) and prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import sys
from contextlib import AbstractAsyncContextManager

import trio

import trio_rooms
from trio_rooms.backplane.redis import RedisBackplane
from trio_rooms.storage.redis import RedisStorage

from .chat_app import ChatRoom
from .processes import open_server_process, serve_until_signalled


async def main(url: str, port: int) -> None:
    # The tests send as fast as they can and run many clients from one address.
    config = trio_rooms.RoomsConfig(rate_limit=None, max_connections_per_address=10_000)
    async with trio_rooms.open_rooms(
        ChatRoom, config=config, storage=RedisStorage(url), backplane=RedisBackplane(url)
    ) as rooms:
        await serve_until_signalled(rooms, port)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)


def open_node(url: str, port: int = 0) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """A node on Redis ``url`` as a subprocess: yields it and its bound port."""
    return open_server_process("tests.cluster_app", url, str(port))
