"""Storage backends for the race tests, and a wrapper that forces interleavings.

`open_backend` opens a real backend by name (memory, a SQLite file, a real Redis);
`GatedStorage` delegates every call to one and can hold chosen calls until the test
lets them go, so that a race is run in the order the test needs, every time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from trio_rooms.storage import Commit, MemoryStorage, SessionRecord, SqliteStorage, Storage
from trio_rooms.storage.redis import RedisStorage

from .delegating_storage import DelegatingStorage
from .redis_server import RedisServer

BACKENDS = ("memory", "sqlite", "redis")


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A new, unopened storage of kind ``name`` (the "redis" one on a fresh server)."""
    if name == "memory":
        return MemoryStorage()
    if name == "sqlite":
        return SqliteStorage(tmp_path / "rooms.db")
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisStorage(server.url)


@asynccontextmanager
async def open_backend(storage: Storage) -> AsyncGenerator[Storage]:
    """``storage``, opened, and closed on exit."""
    await storage.open()
    try:
        yield storage
    finally:
        await storage.aclose()


class HeldWrite:
    """One write held by `GatedStorage.hold_next_write`."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.arrived = trio.Event()
        self.done = trio.Event()
        #: What the held write returned (None for a plain save_session).
        self.result: bool | None = None
        self._released = trio.Event()

    def release(self) -> None:
        self._released.set()

    async def wait_released(self) -> None:
        await self._released.wait()


class GatedStorage(DelegatingStorage):
    """Delegates to ``inner``; holds the loads or the write the test asks it to."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self._parties = 0
        self._loads_in_flight = 0
        self._all_loaded = trio.Event()
        self._all_loaded.set()
        #: The write `hold_next_write` asked for, held or still to come.
        self.held: HeldWrite | None = None
        self._armed = False

    def race_loads(self, parties: int) -> None:
        """Make the next ``parties`` session loads wait until all of them are in flight.

        Every resumer then checks the token against the same record before any of
        them can spend it: the worst interleaving, on every run.
        """
        self._parties = parties
        self._loads_in_flight = 0
        self._all_loaded = trio.Event()

    def hold_next_write(self, session_id: str) -> HeldWrite:
        """Hold the next write of ``session_id``'s record until `HeldWrite.release`."""
        self.held = HeldWrite(session_id)
        self._armed = True
        return self.held

    async def _hold(self, session_id: str) -> HeldWrite | None:
        held = self.held
        if not self._armed or held is None or held.session_id != session_id:
            return None
        self._armed = False
        held.arrived.set()
        await held.wait_released()
        return held

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        if not self._all_loaded.is_set():
            self._loads_in_flight += 1
            if self._loads_in_flight >= self._parties:
                self._all_loaded.set()
            await self._all_loaded.wait()
        return await super().load_session(room, session_id)

    async def save_session(self, record: SessionRecord) -> None:
        held = await self._hold(record.session_id)
        await super().save_session(record)
        if held is not None:
            held.done.set()

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        held = await self._hold(record.session_id)
        result = await super().replace_session(record, expected_token_hash=expected_token_hash)
        if held is not None:
            held.result = result
            held.done.set()
        return result

    async def commit(self, commit: Commit) -> Sequence[bool]:
        held = None
        for write in commit.records:
            held = held or await self._hold(write.record.session_id)
        results = await super().commit(commit)
        if held is not None:
            index = [w.record.session_id for w in commit.records].index(held.session_id)
            held.result = results[index]
            held.done.set()
        return results
