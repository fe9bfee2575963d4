"""The durability test server on a chosen port, so a restarted server keeps its URL.

Run as ``python -m tests.client.counter_server DB_PATH PORT`` (PORT 0 picks a free
port); prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import signal
import sys

import trio

import trio_rooms

from ..durability_app import CounterRoom


async def main(path: str, port: int) -> None:
    storage = trio_rooms.SqliteStorage(path)
    async with (
        trio_rooms.open_rooms(CounterRoom, storage=storage) as rooms,
        trio.open_nursery() as nursery,
    ):
        bound: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", port)
        print(f"PORT {bound}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
