"""What a session stores when it ends does not depend on how long its on_close takes."""

from __future__ import annotations

import attrs
import pytest
import trio

import trio_rooms
from trio_rooms import ConnectRequest, MemoryStorage, Message, Room, RoomsConfig, Session, testing


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
