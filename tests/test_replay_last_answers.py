"""The answers to a client's last messages, handled after its connection ended, reach it
when it resumes (replayed), on a real socket and a real SQLite file.

A session whose client goes still handles what the client had sent (its reader read
ahead while a handler waited). Those answers were dropped, as every send of a closing
session: the client could not tell an add that was handled from one that was lost.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar, cast

import attrs
import orjson
import pytest
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session, SqliteStorage

from .sockets import CLOSE, TEXT, RawClient, client_frame, close_payload, open_raw

ADDS = 30
GAME = "/rooms/game/websocket"


@attrs.frozen
class Add(Message):
    pass


@attrs.frozen
class Counted(Message):
    n: int


class AddSession(Session[None, Counted, Add, "AddRoom"]):
    #: Set when a client asks to resume (`authorize` runs before its upgrade).
    resume_asked: ClassVar[trio.Event]

    @classmethod
    async def authorize(cls, request: ConnectRequest) -> None:
        if request.query.get("resume"):
            cls.resume_asked.set()

    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Add) -> None:
        room = self.room
        # The first add waits: the session's reader reads the others meanwhile.
        await room.released.wait()
        room.count += 1
        # A read of the storage per add (a key never written: not cached), so that
        # handling what was read ahead takes a while.
        await room.storage.get(f"never-{room.count}", int)
        await room.storage.put("count", room.count)
        self.send(Counted(n=room.count))

    async def on_close(self, code: int, reason: str) -> None:
        self.room.closed.set()


class AddRoom(Room[AddSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.count = 0
        self.released = trio.Event()
        self.closed = trio.Event()


@asynccontextmanager
async def _serve(tmp_path: Path) -> AsyncGenerator[tuple[list[AddRoom], int]]:
    made: list[AddRoom] = []

    def factory(name: str) -> AddRoom:
        made.append(AddRoom(name))
        return made[-1]

    storage = SqliteStorage(tmp_path / "rooms.db")
    async with (
        trio_rooms.open_rooms(factory, storage=storage) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield made, port
        nursery.cancel_scope.cancel()


async def _adds_then_close(client: RawClient) -> str:
    """The session's token; then every add and a close, in one write, and the server's
    close read: the session is closing (by its peer) before it handles the first add."""
    session = _session(await client.receive_json())
    token = session["token"]
    assert isinstance(token, str)
    adds = client_frame(TEXT, b'{"type": "add"}') * ADDS
    await client.send(adds + client_frame(CLOSE, close_payload(1001, "going away")))
    assert await client.close_code() == 1001
    return token


async def _counts(client: RawClient, count: int) -> tuple[dict[str, object], list[int]]:
    """The resumed session's ``$session`` frame and the next ``count`` counts."""
    session = _session(await client.receive_json())
    counts: list[int] = []
    while len(counts) < count:
        frame = orjson.loads(await client.receive_text())
        if frame.get("type") == "counted":
            counts.append(frame["n"])
    return session, counts


def _session(frame: dict[str, object]) -> dict[str, object]:
    """The ``$session`` frame's content."""
    session = frame["$session"]
    assert isinstance(session, dict)
    return cast(dict[str, object], session)


@pytest.fixture(autouse=True)
def _fresh_event() -> None:
    AddSession.resume_asked = trio.Event()


async def test_answers_handled_after_the_client_went_are_replayed_when_it_resumes(
    tmp_path: Path,
) -> None:
    with trio.fail_after(20):
        async with _serve(tmp_path) as (rooms, port):
            async with open_raw(port, GAME + "?resume=&seen=0") as client:
                token = await _adds_then_close(client)
            room = rooms[0]
            room.released.set()
            await room.closed.wait()  # it handled all it had read: its answers are logged
            async with open_raw(port, f"{GAME}?resume={token}&seen=0") as client:
                await client.send(client_frame(TEXT, b'{"type": "add"}'))
                session, counts = await _counts(client, ADDS + 1)
            assert session["resumed"] is True
            assert session["replayed"] == ADDS
            assert counts == list(range(1, ADDS + 2))


async def test_a_resume_while_the_last_messages_are_handled_waits_for_their_answers(
    tmp_path: Path,
) -> None:
    """The client resumes at once: the session it resumes is still handling what it
    had sent. All the answers are replayed, before the answer to its next add."""
    with trio.fail_after(20):
        async with _serve(tmp_path) as (rooms, port):
            async with open_raw(port, GAME + "?resume=&seen=0") as client:
                token = await _adds_then_close(client)
            room = rooms[0]

            async def release_once_resume_is_asked() -> None:
                await AddSession.resume_asked.wait()
                room.released.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(release_once_resume_is_asked)
                async with open_raw(port, f"{GAME}?resume={token}&seen=0") as client:
                    await client.send(client_frame(TEXT, b'{"type": "add"}'))
                    session, counts = await _counts(client, ADDS + 1)
            assert session["replayed"] == ADDS
            assert counts == list(range(1, ADDS + 2))
