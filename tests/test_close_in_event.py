"""A close from inside an event: what the event sent after a write leaves first, then the close.

The output gate holds a frame sent after a write until the write is durable, which is
when the event ends; a `close()` that waited for its close frame inside the event used
to wait for itself until ``close_timeout`` and end with 1006, the frame lost. The
timeouts here are long (60 s) and every wait is bounded well below them, so the old
behaviour fails the test instead of passing slowly.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import assert_never

import attrs
import orjson
import trio
import trio_websocket

import trio_rooms
from trio_rooms import ConnectRequest, MemoryStorage, Message, Room, Rooms, RoomsConfig, Session

from .sockets import open_client, read_close_code

#: Far beyond every bound below: a close that waits for it has failed.
CLOSE_TIMEOUT = 60.0
PROMPT = 10.0


@attrs.frozen
class Leave(Message):
    #: Close this session (""), another one by id, or this one inside a transaction.
    how: str = ""


@attrs.frozen
class Noted(Message):
    n: int


class LeavingSession(Session[None, Noted, Leave, "LeavingRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.room.ids.append(self.id)
        self.room.joined.set()

    async def on_message(self, message: Leave) -> None:
        match message:
            case Leave(how=""):
                await self.room.storage.put("n", 1)
                self.send(Noted(n=1))
                await self.close(4000, "bye")
            case Leave(how="transaction"):
                async with self.room.storage.transaction():
                    await self.room.storage.put("n", 2)
                    self.send(Noted(n=2))
                    await self.close(4000, "bye")  # goes after the transaction lands
            case Leave(how=other):
                await self.room.storage.put("n", 3)
                target = self.room.sessions[other]
                target.send(Noted(n=3))
                await target.close(4001, "kicked")
                self.send(Noted(n=4))
            case _:
                assert_never(message)


class LeavingRoom(Room[LeavingSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ids: list[str] = []
        self.joined = trio.Event()


@asynccontextmanager
async def _server() -> AsyncGenerator[tuple[Rooms[LeavingRoom], int]]:
    config = RoomsConfig(close_timeout=CLOSE_TIMEOUT)
    async with (
        trio_rooms.open_rooms(LeavingRoom, config=config, storage=MemoryStorage()) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def _noted(ws: trio_websocket.WebSocketConnection) -> int:
    message: dict[str, int] = orjson.loads(await ws.get_message())
    return message["n"]


async def test_a_frame_sent_after_a_write_leaves_before_the_close_of_the_same_event() -> None:
    """put, send, close in one handler: the client gets the frame, then 4000, at once."""
    async with _server() as (_, port), open_client(port, "/rooms/r/websocket") as (ws, _):
        await ws.send_message(orjson.dumps({"type": "leave"}).decode())
        with trio.fail_after(PROMPT):
            assert await _noted(ws) == 1
            assert await read_close_code(ws) == 4000


async def test_a_close_inside_a_transaction_goes_out_after_it_lands() -> None:
    """In a transaction the close cannot wait for the write: it follows the frame after it."""
    async with _server() as (_, port), open_client(port, "/rooms/r/websocket") as (ws, _):
        await ws.send_message(orjson.dumps({"type": "leave", "how": "transaction"}).decode())
        with trio.fail_after(PROMPT):
            assert await _noted(ws) == 2
            assert await read_close_code(ws) == 4000


async def test_closing_another_session_from_an_event_delivers_its_last_frame() -> None:
    """An event that kicks another session: that session gets its frame, then 4001."""
    async with _server() as (rooms, port), open_client(port, "/rooms/r/websocket") as (kicked, _):
        room = await rooms.get("r")
        with trio.fail_after(PROMPT):
            await room.joined.wait()
        (kicked_id,) = room.ids
        async with open_client(port, "/rooms/r/websocket") as (kicker, _):
            with trio.fail_after(PROMPT):
                await kicker.send_message(
                    orjson.dumps({"type": "leave", "how": kicked_id}).decode()
                )
                assert await _noted(kicked) == 3
                assert await read_close_code(kicked) == 4001
                assert await _noted(kicker) == 4
