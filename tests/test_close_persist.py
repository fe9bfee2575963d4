"""What a session stores: from its admission if it can resume, else from its first update().

What it leaves when it ends does not depend on how long its on_close takes.
"""

from __future__ import annotations

import attrs
import pytest
import trio

import trio_rooms
from trio_rooms import ConnectRequest, MemoryStorage, Message, Room, RoomsConfig, Session, testing
from trio_rooms.storage import Commit, SessionRecord

from .delegating_storage import DelegatingStorage


@attrs.frozen
class Ping(Message):
    pass


@attrs.define
class Data:
    name: str


class SlowToCloseSession(Session[Data, Ping, Ping]):
    async def create_data(self, request: ConnectRequest) -> Data:
        return Data(name=request.query.get("name", "anon"))

    async def on_message(self, message: Ping) -> None:
        self.send(Ping())

    async def on_close(self, code: int, reason: str) -> None:
        await trio.sleep_forever()  # cut off by close_timeout


class SlowToCloseRoom(Room[SlowToCloseSession]):
    pass


@pytest.mark.parametrize("resume", [False, True])
async def test_a_session_with_a_slow_on_close_still_settles_its_record(resume: bool) -> None:
    """A non-resumable session's record is deleted, a resumable one's kept, on_close or not."""
    storage = MemoryStorage()
    config = RoomsConfig(close_timeout=0.2)
    async with trio_rooms.open_rooms(SlowToCloseRoom, config=config, storage=storage) as rooms:
        async with testing.open_test_client(rooms, "lobby", resume=resume) as client:
            client.send(Ping())
            assert await client.receive() == Ping()
            room = await rooms.get("lobby")
            (session_id,) = room.sessions
        with trio.fail_after(5):
            await rooms.wait_statistics(lambda stats: sum(stats.closes.values()) == 1)
    record = await storage.load_session("lobby", session_id)
    assert (record is not None) == resume


@attrs.frozen
class Rename(Message):
    name: str


class RenamingSession(Session[Data, Ping, Ping | Rename]):
    async def create_data(self, request: ConnectRequest) -> Data:
        return Data(name="anon")

    async def on_message(self, message: Ping | Rename) -> None:
        if isinstance(message, Rename):
            self.data.name = message.name
            await self.update()
        self.send(Ping())


class RenamingRoom(Room[RenamingSession]):
    pass


class SessionWritesStorage(DelegatingStorage):
    """Records every session record committed and every session deleted."""

    def __init__(self) -> None:
        super().__init__(MemoryStorage())
        self.written: list[SessionRecord] = []
        self.deleted: list[str] = []

    async def commit(self, commit: Commit) -> list[bool]:
        self.written += [write.record for write in commit.records]
        return list(await super().commit(commit))

    async def delete_session(self, room: str, session_id: str, *, fence: int = 0) -> None:
        self.deleted.append(session_id)
        await super().delete_session(room, session_id, fence=fence)


async def test_a_session_that_cannot_resume_is_stored_from_its_first_update_only() -> None:
    """Without ?resume, a session writes no record until update() and deletes only one it wrote."""
    storage = SessionWritesStorage()
    async with trio_rooms.open_rooms(RenamingRoom, storage=storage) as rooms:
        async with testing.open_test_client(rooms, "lobby", resume=False) as silent:
            silent.send(Ping())
            assert await silent.receive() == Ping()
            assert storage.written == []
        await rooms.wait_statistics(lambda stats: sum(stats.closes.values()) == 1)
        assert storage.written == storage.deleted == []  # nothing stored, nothing to delete
        async with testing.open_test_client(rooms, "lobby", resume=False) as renamed:
            renamed.send(Rename(name="bob"))
            assert await renamed.receive() == Ping()  # sent once update() returned
            (record,) = storage.written
            stored = await storage.load_session("lobby", record.session_id)
            assert stored is not None
            assert b"bob" in stored.data
        await rooms.wait_statistics(lambda stats: sum(stats.closes.values()) == 2)
    assert storage.deleted == [record.session_id]
    assert await storage.load_session("lobby", record.session_id) is None


async def test_a_resumable_session_is_stored_at_its_admission() -> None:
    """With ?resume, a session's record is written before its first message is answered."""
    storage = SessionWritesStorage()
    async with (
        trio_rooms.open_rooms(RenamingRoom, storage=storage) as rooms,
        testing.open_test_client(rooms, "lobby") as client,
    ):
        client.send(Ping())
        assert await client.receive() == Ping()
        (record,) = storage.written
        assert record.token_hash
        assert await storage.load_session("lobby", record.session_id) is not None
