"""A room whose sessions count in ``room.storage``: a get, then a put, per increment.

Run as ``python -m tests.storage_race_app STORAGE``, STORAGE a SQLite file or a
``redis://`` URL: serves on 127.0.0.1 on a free port and prints ``PORT <n>`` once
listening.
"""

from __future__ import annotations

import sys
from contextlib import AbstractAsyncContextManager
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session
from trio_rooms.storage import Storage

from .processes import open_server_process, serve_until_signalled


@attrs.frozen
class Increment(Message):
    pass


@attrs.frozen
class Counted(Message):
    value: int


class CounterSession(Session[None, Counted, Increment, "CounterRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Increment) -> None:
        match message:
            case Increment():
                # Two awaits on storage, nothing held explicitly: the input gate alone
                # keeps other sessions' increments from coming in between.
                value = await self.room.storage.get("count", int) or 0
                await self.room.storage.put("count", value + 1)
                self.send(Counted(value=value + 1))  # leaves once the put is durable
            case _:
                assert_never(message)


class CounterRoom(Room[CounterSession]):
    pass


def storage_of(where: str) -> Storage:
    """A SQLite file's storage, or a Redis URL's."""
    if where.startswith("redis://"):
        from trio_rooms.storage.redis import RedisStorage

        return RedisStorage(where)
    return trio_rooms.SqliteStorage(where)


async def main(where: str) -> None:
    config = trio_rooms.RoomsConfig(rate_limit=None)
    async with trio_rooms.open_rooms(
        CounterRoom, config=config, storage=storage_of(where)
    ) as rooms:
        await serve_until_signalled(rooms, 0)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])


def open_server(where: str) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """This server as a subprocess on ``where``: yields it and its port."""
    return open_server_process("tests.storage_race_app", where)
