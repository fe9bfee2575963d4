"""A MemoryStorage whose writes fail on demand, for tests of storage failures."""

from __future__ import annotations

from trio_rooms import StorageError
from trio_rooms.storage import MemoryStorage, SessionRecord


class FlakyStorage:
    """MemoryStorage whose writes (sessions and room values) fail while ``fail`` is set."""

    def __init__(self) -> None:
        self._inner = MemoryStorage()
        self.fail = False

    def _check(self) -> None:
        if self.fail:
            raise StorageError("disk on fire")

    async def open(self) -> None:
        await self._inner.open()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        return await self._inner.load_session(room, session_id)

    async def save_session(self, record: SessionRecord) -> None:
        self._check()
        await self._inner.save_session(record)

    async def delete_session(self, room: str, session_id: str) -> None:
        await self._inner.delete_session(room, session_id)

    async def get(self, room: str, key: str) -> bytes | None:
        return await self._inner.get(room, key)

    async def put(self, room: str, key: str, value: bytes) -> None:
        self._check()
        await self._inner.put(room, key, value)

    async def delete(self, room: str, key: str) -> None:
        await self._inner.delete(room, key)
