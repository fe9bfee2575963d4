"""One resume token, many connections at once: it is spent once, on every storage backend.

Real sockets on both transports, real storage (memory, a SQLite file, a real Redis);
`GatedStorage` makes every racer check the token against the same record before any
of them may spend it, so the race is the worst one on every run.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
import trio

import trio_rooms
from trio_rooms import Rooms

from .chat_app import ChatRoom
from .gated_storage import BACKENDS, GatedStorage, make_backend
from .members import Member, joined_at_once


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> GatedStorage:
    return GatedStorage(make_backend(request.param, request, tmp_path))


@pytest.fixture
async def rooms(storage: GatedStorage) -> AsyncGenerator[Rooms[ChatRoom]]:
    async with trio_rooms.open_rooms(ChatRoom, storage=storage) as rooms:
        yield rooms


@pytest.mark.parametrize("racers", [2, 5])
async def test_one_token_resumes_exactly_one_of_the_connections_racing_with_it(
    rooms: Rooms[ChatRoom], storage: GatedStorage, port: int, racers: int
) -> None:
    """Exactly one racer resumes; the others get fresh sessions that are real members."""
    async with await Member.join(port, "resume=&name=victim") as victim:
        storage.race_loads(racers)
        query = f"resume={victim.token}&name=racer"
        async with joined_at_once([port] * racers, query) as members:
            resumed = [member for member in members if member.resumed]
            assert len(resumed) == 1, [member.session for member in members]
            (winner,) = resumed
            assert winner.session_id == victim.session_id
            fresh = [member.session_id for member in members if member is not winner]
            assert len(set(fresh)) == racers - 1
            assert victim.session_id not in fresh
            assert await victim.client.close_code() == 4001  # still connected: taken over
            room = await rooms.get("lobby")
            assert set(room.sessions) == {member.session_id for member in members}
            assert rooms.statistics().sessions == racers
            await members[-1].say("to-all")
            with trio.fail_after(10):
                for member in members:
                    assert await member.chats("to-all") == "to-all"
            assert await winner.name() == "victim"
            losers = [member for member in members if member is not winner]
            assert {await member.name() for member in losers} == {"racer"}


async def test_after_a_race_the_spent_token_is_refused_and_the_new_one_resumes(
    storage: GatedStorage, port: int
) -> None:
    """After a race the spent token starts a fresh session and the winner's new one resumes."""
    async with await Member.join(port, "resume=&name=victim") as victim:
        pass
    storage.race_loads(3)
    async with joined_at_once([port] * 3, f"resume={victim.token}&name=racer") as members:
        (winner,) = [member for member in members if member.resumed]
    async with await Member.join(port, f"resume={victim.token}") as again:
        assert not again.resumed
    async with await Member.join(port, f"resume={winner.token}") as back:
        assert back.resumed
        assert back.session_id == victim.session_id
        assert await back.name() == "victim"
