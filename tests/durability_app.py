"""A server whose sessions acknowledge a value only once update() stored it.

Run as ``python -m tests.durability_app DB_PATH``: serves on a free port of 127.0.0.1
and prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import signal
import sys
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session


@attrs.frozen
class Put(Message):
    value: int


@attrs.frozen
class Get(Message):
    pass


@attrs.frozen
class Stored(Message):
    value: int


@attrs.define
class Counter:
    value: int = 0


class CounterSession(Session[Counter, Stored, Put | Get]):
    async def create_data(self, request: ConnectRequest) -> Counter:
        return Counter()

    async def on_message(self, message: Put | Get) -> None:
        match message:
            case Put(value=value):
                self.data.value = value
                await self.update()
                self.send(Stored(value=value))  # the acknowledgement: durable by now
            case Get():
                self.send(Stored(value=self.data.value))
            case _:
                assert_never(message)


class CounterRoom(Room[CounterSession]):
    pass


async def main(path: str) -> None:
    storage = trio_rooms.SqliteStorage(path)
    async with (
        trio_rooms.open_rooms(CounterRoom, storage=storage) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        print(f"PORT {port}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
