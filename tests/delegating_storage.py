"""A `Storage` that hands every call to another one: the base of the tests' storages."""

from __future__ import annotations

from collections.abc import Sequence

from trio_rooms.storage import Commit, LoggedFrame, SessionRecord, Storage, StoredAlarm


class DelegatingStorage:
    """Forwards every `Storage` call to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner

    async def open(self) -> None:
        await self._inner.open()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        return await self._inner.load_session(room, session_id)

    async def save_session(self, record: SessionRecord) -> None:
        await self._inner.save_session(record)

    async def claim_session(
        self,
        room: str,
        session_id: str,
        *,
        token_hash: bytes,
        new_token_hash: bytes,
        expires_at: float,
        fence: int = 0,
    ) -> SessionRecord | None:
        return await self._inner.claim_session(
            room,
            session_id,
            token_hash=token_hash,
            new_token_hash=new_token_hash,
            expires_at=expires_at,
            fence=fence,
        )

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        return await self._inner.replace_session(record, expected_token_hash=expected_token_hash)

    async def delete_session(self, room: str, session_id: str, *, fence: int = 0) -> None:
        await self._inner.delete_session(room, session_id, fence=fence)

    async def get(self, room: str, key: str) -> bytes | None:
        return await self._inner.get(room, key)

    async def put(self, room: str, key: str, value: bytes) -> None:
        await self._inner.put(room, key, value)

    async def delete(self, room: str, key: str) -> None:
        await self._inner.delete(room, key)

    async def commit(self, commit: Commit) -> Sequence[bool]:
        return await self._inner.commit(commit)

    async def load_alarms(self, room: str) -> Sequence[StoredAlarm]:
        return await self._inner.load_alarms(room)

    async def next_alarms(self, limit: int) -> Sequence[StoredAlarm]:
        return await self._inner.next_alarms(limit)

    async def replace_alarm(
        self, alarm: StoredAlarm, new: StoredAlarm | None, *, fence: int = 0
    ) -> bool:
        return await self._inner.replace_alarm(alarm, new, fence=fence)

    async def load_frames(self, room: str, *, after: int = 0) -> Sequence[LoggedFrame]:
        return await self._inner.load_frames(room, after=after)

    async def last_frame_seq(self, room: str) -> int:
        return await self._inner.last_frame_seq(room)
