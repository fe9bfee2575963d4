"""A room whose every message is a read-modify-write through awaits, for the gate tests.

Run as ``python -m tests.gates_app DB_PATH [PORT]``: a SQLite (``synchronous=FULL``)
server on 127.0.0.1 that prints ``PORT <n>`` once listening, for the kill -9 test.
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
class Increment(Message):
    """Add one to the room's counter in a handler."""


@attrs.frozen
class IncrementOutside(Message):
    """Add one from a task of the room's own, in ``room.exclusive()``."""


@attrs.frozen
class Read(Message):
    pass


@attrs.frozen
class Counted(Message):
    #: The stored counter, as this increment left it (or as read).
    n: int
    #: The room's in-memory counter, kept alongside.
    seen: int
    #: This session's own increments (its data).
    mine: int


@attrs.define
class Tally:
    mine: int = 0


class CounterSession(Session[Tally, Counted, Increment | IncrementOutside | Read, "CounterRoom"]):
    async def create_data(self, request: ConnectRequest) -> Tally:
        return Tally()

    async def on_message(self, message: Increment | IncrementOutside | Read) -> None:
        room = self.room
        match message:
            case Increment():
                seen = room.seen  # read before the awaits, written after them
                n = await room.storage.get("n", int) or 0
                await room.storage.put("n", n + 1)
                mine = self.data.mine
                self.data.mine = mine + 1
                await self.update()
                room.seen = seen + 1
                self.send(Counted(n=n + 1, seen=seen + 1, mine=mine + 1))
            case IncrementOutside():
                room.start_soon(room.increment_outside, self)
            case Read():
                n = await room.storage.get("n", int) or 0
                self.send(Counted(n=n, seen=room.seen, mine=self.data.mine))
            case _:
                assert_never(message)


class CounterRoom(Room[CounterSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen = 0

    async def increment_outside(self, session: CounterSession) -> None:
        async with self.exclusive():
            seen = self.seen
            n = await self.storage.get("n", int) or 0
            await trio.sleep(0)  # noqa: ASYNC115 - the issue's own await; the gate stays closed
            await self.storage.put("n", n + 1)
            self.seen = seen + 1
            session.send(Counted(n=n + 1, seen=seen + 1, mine=session.data.mine))


CLIENT_MESSAGES = (Increment, IncrementOutside, Read)
SERVER_MESSAGES = (Counted,)


async def main(path: str, port: int) -> None:
    storage = trio_rooms.SqliteStorage(path, synchronous="FULL")
    config = trio_rooms.RoomsConfig(rate_limit=None)  # the tests write as fast as they can
    async with trio_rooms.open_rooms(CounterRoom, config=config, storage=storage) as rooms:
        await serve_until_signalled(rooms, port)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)


def open_server(path: Path, port: int = 0) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """This server as a subprocess on ``path`` and ``port``: yields it and its bound port."""
    return open_server_process("tests.gates_app", str(path), str(port))
