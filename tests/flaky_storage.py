"""A MemoryStorage whose writes fail on demand, for tests of storage failures."""

from __future__ import annotations

from collections.abc import Sequence

from trio_rooms import StorageError
from trio_rooms.storage import Commit, MemoryStorage, SessionRecord

from .delegating_storage import DelegatingStorage


class FlakyStorage(DelegatingStorage):
    """MemoryStorage whose writes (sessions and room values) fail while ``fail`` is set,
    and whose commits (a room's batched writes) fail while ``fail_commits`` is set."""

    def __init__(self) -> None:
        super().__init__(MemoryStorage())
        self.fail = False
        self.fail_commits = False

    def _check(self) -> None:
        if self.fail:
            raise StorageError("disk on fire")

    async def save_session(self, record: SessionRecord) -> None:
        self._check()
        await super().save_session(record)

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
        self._check()
        return await super().claim_session(
            room,
            session_id,
            token_hash=token_hash,
            new_token_hash=new_token_hash,
            expires_at=expires_at,
            fence=fence,
        )

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        self._check()
        return await super().replace_session(record, expected_token_hash=expected_token_hash)

    async def put(self, room: str, key: str, value: bytes) -> None:
        self._check()
        await super().put(room, key, value)

    async def commit(self, commit: Commit) -> Sequence[bool]:
        self._check()
        if self.fail_commits:
            raise StorageError("disk on fire")
        return await super().commit(commit)
