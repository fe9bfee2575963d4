"""Who reads a session's socket: its handler between messages, its reader while a hook waits.

A message whose hook does not wait costs one task step; one whose hook waits (on storage,
the gate, anything) must not stop the server reading that peer: its pings are answered,
its next messages queued in order, its close seen, while the hook is still running.
"""

from __future__ import annotations

import attrs
import orjson
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session
from trio_rooms._core.eager import run_eagerly

from .servers import Transport, start_server
from .sockets import CLOSE, PING, PONG, client_frame, close_payload, open_raw


@attrs.frozen
class Wait(Message):
    n: int


@attrs.frozen
class Note(Message):
    n: int


@attrs.frozen
class Done(Message):
    n: int


class WaitingSession(Session[None, Done, Wait | Note, "WaitingRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Wait | Note) -> None:
        if isinstance(message, Wait):
            self.room.waiting.set()
            await self.room.release.wait()
        self.send(Done(message.n))

    async def on_close(self, code: int, reason: str) -> None:
        self.room.closed.set()


class WaitingRoom(Room[WaitingSession]):
    async def on_start(self) -> None:
        self.waiting = trio.Event()
        self.release = trio.Event()
        self.closed = trio.Event()


def _text(message: dict[str, object]) -> bytes:
    return client_frame(0x1, orjson.dumps(message))


async def _started_room(rooms: trio_rooms.Rooms[WaitingRoom]) -> WaitingRoom:
    await rooms.wait_statistics(lambda stats: stats.sessions == 1)
    return await rooms.get("w")


@pytest.mark.embedded_only("raw control frames are the embedded server's to answer")
async def test_a_peer_is_read_while_its_hook_waits_and_its_messages_stay_in_order(
    nursery: trio.Nursery,
) -> None:
    """While a hook waits, the peer's ping gets its pong and its next messages wait their turn."""
    async with trio_rooms.open_rooms(WaitingRoom) as rooms:
        port = await start_server(nursery, "embedded", rooms)
        async with open_raw(port, "/rooms/w/websocket") as client:
            room = await _started_room(rooms)
            await client.send(_text({"type": "note", "n": 1}))
            assert orjson.loads(await client.receive_text()) == {"type": "done", "n": 1}
            await client.send(_text({"type": "wait", "n": 2}))
            await room.waiting.wait()
            await client.send(_text({"type": "note", "n": 3}) + client_frame(PING, b"still?"))
            with trio.fail_after(10):  # a server not reading it would never answer
                pong = await client.receive_frame()
            assert pong is not None
            assert (pong.opcode, pong.payload) == (PONG, b"still?")
            room.release.set()
            assert orjson.loads(await client.receive_text()) == {"type": "done", "n": 2}
            assert orjson.loads(await client.receive_text()) == {"type": "done", "n": 3}
            # The handler reads again once it waits with nothing queued: still served.
            await client.send(_text({"type": "note", "n": 4}))
            assert orjson.loads(await client.receive_text()) == {"type": "done", "n": 4}


async def test_a_peer_that_leaves_while_its_hook_waits_leaves_the_room_at_once(
    nursery: trio.Nursery, transport: Transport
) -> None:
    """The peer's close is seen while its hook waits: it leaves the room, on_close runs after."""
    async with trio_rooms.open_rooms(WaitingRoom) as rooms:
        port = await start_server(nursery, transport, rooms)
        async with open_raw(port, "/rooms/w/websocket") as client:
            room = await _started_room(rooms)
            await client.send(_text({"type": "note", "n": 1}))
            assert orjson.loads(await client.receive_text()) == {"type": "done", "n": 1}
            await client.send(_text({"type": "wait", "n": 2}))
            await room.waiting.wait()
            await client.send(client_frame(CLOSE, close_payload(1000)))
            with trio.fail_after(10):  # a server not reading it would keep the session
                await rooms.wait_statistics(lambda stats: stats.sessions == 0)
            assert not room.closed.is_set()  # the hook still runs: on_close comes after it
            room.release.set()
            await room.closed.wait()
            frame = await client.receive_frame()
            assert frame is not None
            assert frame.opcode == CLOSE


async def test_run_eagerly_says_nothing_of_work_that_never_waits() -> None:
    """Work that returns without suspending runs in the caller's step, on_wait not called."""
    waits: list[str] = []
    ran: list[str] = []

    async def work() -> None:
        ran.append("work")

    await run_eagerly(work(), lambda: waits.append("wait"))
    assert (ran, waits) == (["work"], [])


async def test_run_eagerly_tells_once_before_work_first_waits_and_returns_its_outcome() -> None:
    """on_wait runs once, before the first suspension; the work then ends as awaited."""
    events: list[str] = []
    gate = trio.Event()

    async def work() -> None:
        events.append("start")
        await gate.wait()
        events.append("woken")
        await trio.lowlevel.checkpoint()
        raise ValueError("from the work")

    async def release() -> None:
        await trio.testing.wait_all_tasks_blocked()
        events.append("released")
        gate.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release)
        with pytest.raises(ValueError, match="from the work"):
            await run_eagerly(work(), lambda: events.append("on_wait"))
    assert events == ["start", "on_wait", "released", "woken"]


async def test_run_eagerly_delivers_cancellation_to_the_work() -> None:
    """A cancel reaches the waiting work, whose cleanup runs, and ends the caller's scope."""
    cleaned = trio.Event()

    async def work() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned.set()

    with trio.move_on_after(0.01) as scope:
        await run_eagerly(work(), lambda: None)
    assert scope.cancelled_caught
    assert cleaned.is_set()
