"""``MemoryStorage``: the Storage Protocol in a dict, for tests and single-process demos."""

from __future__ import annotations

from typing import final

import trio

from .storage import SessionRecord

__all__ = ["MemoryStorage"]


@final
class MemoryStorage:
    """Keeps everything in memory: fast, and gone with the process.

    Sessions still resume after a dropped connection or a room eviction, not after a
    restart. The default storage of `open_rooms`.
    """

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], SessionRecord] = {}
        self._values: dict[tuple[str, str], bytes] = {}

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        await trio.lowlevel.checkpoint()
        return self._sessions.get((room, session_id))

    async def save_session(self, record: SessionRecord) -> None:
        await trio.lowlevel.checkpoint()
        self._sessions[record.room, record.session_id] = record

    async def delete_session(self, room: str, session_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self._sessions.pop((room, session_id), None)

    async def get(self, room: str, key: str) -> bytes | None:
        await trio.lowlevel.checkpoint()
        return self._values.get((room, key))

    async def put(self, room: str, key: str, value: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self._values[room, key] = value

    async def delete(self, room: str, key: str) -> None:
        await trio.lowlevel.checkpoint()
        self._values.pop((room, key), None)
