"""A single-node server (no cluster, no backplane) for the tests of one writer per room.

Run as ``python -m tests.writer_app NAME STORAGE``: STORAGE is a SQLite file or a
``redis://`` URL, which several of these servers share; NAME tells them apart in what
they send. Serves on 127.0.0.1 on a free port and prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session
from trio_rooms.storage import Storage
from trio_rooms.storage.redis import RedisStorage

from .processes import open_server_process, serve_until_signalled


@attrs.frozen
class Say(Message):
    text: str


@attrs.frozen
class Said(Message):
    text: str
    #: The NAME of the server whose copy of the room sent it.
    server: str


class WriterSession(Session[None, Said, Say, "WriterRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Say) -> None:
        match message:
            case Say(text=text):
                # One commit: the value and the broadcast's replay log entry.
                await self.room.storage.put("last", text)
                self.room.broadcast(Said(text=text, server=self.room.server))
            case _:
                assert_never(message)


class WriterRoom(Room[WriterSession]):
    def __init__(self, name: str, server: str) -> None:
        super().__init__(name)
        #: The NAME of the server it runs on.
        self.server = server

    @classmethod
    def named(cls, server: str) -> Callable[[str], WriterRoom]:
        """The rooms' factory of the server ``server``."""
        return functools.partial(cls, server=server)


def storage_at(where: str) -> Storage:
    """The storage ``where`` names: a ``redis://`` URL, else a SQLite file."""
    if where.startswith("redis://"):
        return RedisStorage(where)
    return trio_rooms.SqliteStorage(where)


async def main(server: str, where: str) -> None:
    config = trio_rooms.RoomsConfig(rate_limit=None)
    factory = WriterRoom.named(server)
    async with trio_rooms.open_rooms(factory, config=config, storage=storage_at(where)) as rooms:
        await serve_until_signalled(rooms, 0)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])


def open_server(name: str, where: str) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """This server as a subprocess named ``name`` on the storage ``where``, its stderr
    captured: yields it and its port."""
    return open_server_process("tests.writer_app", name, where, capture_stderr=True)
