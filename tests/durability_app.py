"""A server whose sessions acknowledge a value only once update() stored it.

Run as ``python -m tests.durability_app DB_PATH [PORT]``: serves on 127.0.0.1 (PORT 0 or
none: a free port; a restarted server can take the same one again) and prints
``PORT <n>`` once listening.
"""

from __future__ import annotations

import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session

from .processes import open_server_process, serve_until_signalled


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


async def main(path: str, port: int) -> None:
    storage = trio_rooms.SqliteStorage(path)
    config = trio_rooms.RoomsConfig(rate_limit=None)  # the tests write as fast as they can
    async with trio_rooms.open_rooms(CounterRoom, config=config, storage=storage) as rooms:
        await serve_until_signalled(rooms, port)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)


def open_server(path: Path, port: int = 0) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """This server as a subprocess on ``path`` and ``port``: yields it and its bound port."""
    return open_server_process("tests.durability_app", str(path), str(port))
