"""A server whose room broadcasts numbered notes on request, for the record-refresh tests.

Run as ``python -m tests.stale_record_app STORAGE RESUME_WINDOW MAX_MESSAGES MAX_BYTES
MAX_AGE``: STORAGE is a SQLite file's path or a ``redis://`` URL; the numbers are the
`RoomsConfig.resume_window` and the room's `ReplayLimits`. Serves on a free port of
127.0.0.1 and prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import sys
from contextlib import AbstractAsyncContextManager

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, ReplayLimits, Room, RoomsConfig, Session, Storage

from .processes import open_server_process, serve_until_signalled


@attrs.frozen
class Burst(Message):
    """Broadcast the notes ``first`` to ``first + count - 1``, each with ``size`` bytes."""

    first: int
    count: int = 1
    size: int = 0


@attrs.frozen
class Note(Message):
    n: int
    text: str = ""


class NoteSession(Session[None, Note, Burst]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Burst) -> None:
        for n in range(message.first, message.first + message.count):
            self.room.broadcast(Note(n=n, text="x" * message.size))


class NoteRoom(Room[NoteSession]):
    pass


def _storage(spec: str) -> Storage:
    if spec.startswith("redis://"):
        from trio_rooms.storage.redis import RedisStorage

        return RedisStorage(spec)
    return trio_rooms.SqliteStorage(spec)


async def main(spec: str, window: float, limits: ReplayLimits) -> None:
    config = RoomsConfig(resume_window=window, replay=limits, rate_limit=None)
    async with trio_rooms.open_rooms(NoteRoom, config=config, storage=_storage(spec)) as rooms:
        await serve_until_signalled(rooms, 0)


if __name__ == "__main__":
    window, max_messages, max_bytes, max_age = sys.argv[2:6]
    limits = ReplayLimits(
        max_messages=int(max_messages), max_bytes=int(max_bytes), max_age=float(max_age)
    )
    trio.run(main, sys.argv[1], float(window), limits)


def open_server(
    storage: str,
    *,
    resume_window: float = 600.0,
    max_messages: int = 1000,
    max_bytes: int = 1024 * 1024,
    max_age: float = 600.0,
) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """This server as a subprocess on ``storage``: yields it and its port."""
    args = (resume_window, max_messages, max_bytes, max_age)
    return open_server_process("tests.stale_record_app", storage, *map(str, args))
