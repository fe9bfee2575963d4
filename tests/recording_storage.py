"""A storage that counts reads, records commits and holds the next commit on demand."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from trio_rooms.storage import Commit, Storage

from .delegating_storage import DelegatingStorage


class RecordingStorage(DelegatingStorage):
    """Counts the backend's reads, records its commits, and holds the next commit on demand."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.gets = 0
        self.commits: list[Commit] = []
        self.arrived = trio.Event()
        self._release: trio.Event | None = None

    def hold_next_commit(self) -> trio.Event:
        """Hold the next commit until the returned event is set; `arrived` says it came."""
        self.arrived = trio.Event()
        self._release = trio.Event()
        return self._release

    async def get(self, room: str, key: str) -> bytes | None:
        self.gets += 1
        return await super().get(room, key)

    async def commit(self, commit: Commit) -> Sequence[bool]:
        release, self._release = self._release, None
        if release is not None:
            self.arrived.set()
            await release.wait()
        self.commits.append(commit)
        return await super().commit(commit)
