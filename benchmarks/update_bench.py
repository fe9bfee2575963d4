"""How many durable ``update()`` calls per second SQLite takes, from 1 and from 100 sessions.

    python -m benchmarks.update_bench [--seconds 3]

Each session sends ``Put`` messages one at a time and waits for the acknowledgement,
which its handler sends after ``await self.update()`` returned (tests/durability_app).
Runs over trio_rooms.testing (in-memory streams), so the figure is the storage's.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Literal

import trio

import trio_rooms
from tests.durability_app import CounterRoom, Put, Stored
from trio_rooms import testing


async def _writer(
    rooms: trio_rooms.Rooms[CounterRoom], name: str, until: float, counts: list[int]
) -> None:
    async with testing.connect(rooms, name) as client:
        value = 0
        while trio.current_time() < until:
            value += 1
            client.send(Put(value=value))
            assert await client.receive() == Stored(value=value)
        counts.append(value)


async def measure(sessions: int, seconds: float, synchronous: Literal["FULL", "NORMAL"]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        storage = trio_rooms.SqliteStorage(Path(folder) / "bench.db", synchronous=synchronous)
        counts: list[int] = []
        # Each session writes as fast as its updates are durable: past the default rate
        # limit, which would answer with an error frame the writer does not expect.
        config = trio_rooms.RoomsConfig(rate_limit=None)
        async with trio_rooms.open_rooms(CounterRoom, config=config, storage=storage) as rooms:
            until = trio.current_time() + seconds
            async with trio.open_nursery() as nursery:
                for n in range(sessions):
                    nursery.start_soon(_writer, rooms, f"room{n % 10}", until, counts)
        return sum(counts) / seconds


async def main(seconds: float) -> None:
    for synchronous in ("FULL", "NORMAL"):
        for sessions in (1, 100):
            rate = await measure(sessions, seconds, synchronous)
            print(f"synchronous={synchronous:6} sessions={sessions:3}: {rate:8.0f} updates/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    trio.run(main, parser.parse_args().seconds)
