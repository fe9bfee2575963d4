"""Messages per second of one room whose every message does one ``room.storage.put``.

    python -m benchmarks.put_bench [--seconds 3] [--sessions 1,100]

SQLite with ``synchronous="FULL"``. Each session sends ``Put`` messages one at a time
and waits for the reply its handler sends after the put, so the figure includes the
durability promise: the reply never leaves before its write is on disk. All sessions
are in one room. Runs over ``trio_rooms.testing`` (in-memory streams), so the figure is
the room's and the storage's, not the network's.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session, testing


@attrs.frozen
class Put(Message):
    value: int


@attrs.frozen
class Stored(Message):
    value: int


class PutSession(Session[None, Stored, Put]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Put) -> None:
        await self.room.storage.put(f"value:{self.id}", message.value)
        self.send(Stored(value=message.value))


class PutRoom(Room[PutSession]):
    pass


async def _writer(
    rooms: trio_rooms.Rooms[PutRoom], go: trio.Event, stop: trio.Event, counts: list[int]
) -> None:
    async with testing.connect(rooms, "bench") as client:
        await go.wait()
        value = 0
        while not stop.is_set():
            value += 1
            client.send(Put(value=value))
            assert await client.receive() == Stored(value=value)
        counts.append(value)


async def measure(sessions: int, seconds: float) -> float:
    with tempfile.TemporaryDirectory() as folder:
        storage = trio_rooms.SqliteStorage(Path(folder) / "bench.db", synchronous="FULL")
        config = trio_rooms.RoomsConfig(rate_limit=None)
        counts: list[int] = []
        go, stop = trio.Event(), trio.Event()
        async with (
            trio_rooms.open_rooms(PutRoom, config=config, storage=storage) as rooms,
            trio.open_nursery() as nursery,
        ):
            for _ in range(sessions):
                nursery.start_soon(_writer, rooms, go, stop, counts)
            await rooms.wait_statistics(lambda stats: stats.sessions == sessions)
            go.set()
            start = trio.current_time()
            await trio.sleep(seconds)
            stop.set()
        return sum(counts) / (trio.current_time() - start)


async def main(seconds: float, sessions: list[int]) -> None:
    for count in sessions:
        rate = await measure(count, seconds)
        print(f"sessions={count:3}: {rate:8.0f} messages/s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sessions", default="1,100")
    arguments = parser.parse_args()
    trio.run(main, arguments.seconds, [int(n) for n in arguments.sessions.split(",")])
