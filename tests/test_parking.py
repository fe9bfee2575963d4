"""Parking (``RoomsConfig.park_after``): a silent session keeps no task, and loses nothing.

``park_after`` is tiny here: the server's keepalive sweep (a quarter of it) parks each
quiet session at once, and the tests wait on ``statistics().parks`` to know it did.
"""

from __future__ import annotations

import gc
import json
from types import CoroutineType

import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import Rooms, RoomsConfig
from trio_rooms.transports._parking import Parking, Sleeper

from .chat_app import Chat, ChatRoom, ChatSession, Leave, Shout, Whisper
from .parked import wait_parked
from .peer import Peer, connect
from .sockets import PING, PONG, RawClient, client_frame, open_raw

PARK_AFTER = 0.02


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(park_after=PARK_AFTER)


@pytest.fixture
async def server(rooms: Rooms[ChatRoom], nursery: trio.Nursery) -> int:
    port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    return port


async def _chat(peer: Peer) -> str:
    message = await peer.receive_until(Chat)
    assert isinstance(message, Chat)
    return message.text


async def test_a_silent_session_parks_and_answers_its_next_message(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A parked session handles its next message as a live one would, then parks again."""
    async with connect(server, "lobby", "name=ann") as ann:
        parks = await wait_parked(rooms, 1, 1)
        await ann.send(Whisper(text="hi"))
        assert await _chat(ann) == "hi"
        await wait_parked(rooms, 1, parks + 1)
        await ann.send(Leave(code=4000))
        assert await ann.close_code() == 4000
    room = await rooms.get("lobby")
    assert await room.wait_closed(1) == [("ann", 4000)]


async def test_a_broadcast_reaches_a_parked_session_which_stays_parked(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A broadcast to a parked session is written at once, without running its tasks."""
    async with (
        connect(server, "lobby", "name=ann") as ann,
        connect(server, "lobby", "name=bob") as bob,
    ):
        parks = await wait_parked(rooms, 2, 2)
        await bob.send(Shout(text="hey"))
        assert await _chat(ann) == "hey"
        stats = await rooms.wait_statistics(lambda stats: stats.parks >= parks + 1)
        await wait_parked(rooms, 2)
        assert rooms.statistics().parks == parks + 1  # bob's park again; ann never woke
        assert stats.sessions == 2


async def test_no_frame_is_lost_or_reordered_across_many_parks_both_ways(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """Messages to and from sessions that park and run on between them keep their order."""
    async with (
        connect(server, "lobby", "name=ann") as ann,
        connect(server, "lobby", "name=bob") as bob,
    ):
        parks = await wait_parked(rooms, 2, 2)
        for round_ in range(30):
            # Each round starts with both parked, and interleaves differently.
            burst = round_ % 4 + 1
            for i in range(burst):
                await ann.send(Whisper(text=f"ann {round_}.{i}"))
                if round_ % 2:
                    await bob.send(Shout(text=f"bob {round_}.{i}"))
            got = [await _chat(ann) for _ in range(burst * (1 + round_ % 2))]
            own = [text for text in got if text.startswith("ann")]
            heard = [text for text in got if text.startswith("bob")]
            assert own == [f"ann {round_}.{i}" for i in range(burst)]
            assert heard == ([f"bob {round_}.{i}" for i in range(burst)] if round_ % 2 else [])
            parks = await wait_parked(rooms, 2, parks + 1)


async def test_a_parked_session_keeps_no_task_or_coroutine(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """While parked, no task or coroutine of the session's is alive; its Session is."""
    async with connect(server, "lobby", "name=ann"):
        await wait_parked(rooms, 1, 1)
        room = await rooms.get("lobby")
        (session,) = room.sessions.values()
        await trio.testing.wait_all_tasks_blocked()  # its tasks have ended, not just begun to
        gc.collect()
        names = {
            obj.__qualname__
            for obj in gc.get_objects()
            if isinstance(obj, CoroutineType) and obj.cr_frame is not None  # not finished
        }
        assert "Parking.run" in names  # the server's one waiter
        alive = names & {
            "SessionRunner.run",
            "SessionIO._read_loop",
            "SessionIO._write_loop",
            "_serve_stream",
            "ParkedStream.resume",
        }
        assert not alive
        assert isinstance(session, ChatSession)
        assert session.data.name == "ann"


async def test_a_park_the_transport_refuses_is_never_counted(
    rooms: Rooms[ChatRoom], server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session whose socket the server cannot watch (a full epoll set) is not parked.

    Its tasks ended, but it runs on at once: neither ``parked_sessions`` nor ``parks``
    count it, not even while the transport is deciding.
    """
    refusals: list[int] = []  # parked_sessions as each refusal saw it
    refused_thrice = trio.Event()

    def refuse(self: Parking, fd: int, sleeper: Sleeper) -> bool:
        refusals.append(rooms.statistics().parked_sessions)
        if len(refusals) == 3:
            refused_thrice.set()
        return False

    monkeypatch.setattr(Parking, "park", refuse)
    async with connect(server, "lobby", "name=ann") as ann:
        await refused_thrice.wait()
        assert set(refusals) == {0}
        await ann.send(Whisper(text="still live"))
        assert await _chat(ann) == "still live"
        stats = rooms.statistics()
        assert (stats.parked_sessions, stats.parks) == (0, 0)


async def test_parked_sessions_counts_each_park_until_it_runs_on_or_closes(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """Parked, run on by a message, parked again, then closed while parked: 1, 0, 1, 0."""
    async with connect(server, "lobby", "name=ann") as ann:
        parks = await wait_parked(rooms, 1, 1)
        await ann.send(Whisper(text="wake"))
        assert await _chat(ann) == "wake"
        parks = await wait_parked(rooms, 1, parks + 1)
        room = await rooms.get("lobby")
        (session,) = room.sessions.values()
        await session.close(4003, "kicked")
        assert await ann.close_code() == 4003
    stats = await rooms.wait_statistics(lambda stats: stats.sessions == 0)
    assert (stats.parked_sessions, stats.parks) == (0, parks)


async def test_shutdown_closes_parked_sessions_with_1001_and_returns(
    rooms: Rooms[ChatRoom], nursery: trio.Nursery
) -> None:
    """Cancelling the server closes its parked sessions with 1001, and it returns."""
    async with trio.open_nursery() as server_nursery:
        port: int = await server_nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        async with connect(port, "lobby", "name=ann") as ann:
            await wait_parked(rooms, 1, 1)
            server_nursery.cancel_scope.cancel()
            assert await ann.close_code() == 1001
    room = await rooms.get("lobby")
    assert await room.wait_closed(1) == [("ann", 1001)]


async def test_a_parked_peer_that_resets_ends_its_session_once(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A reset of a parked connection ends its session: on_close runs once, with 1006."""
    async with open_raw(server, "/rooms/lobby/websocket?name=ann") as ann:
        await wait_parked(rooms, 1, 1)
        ann.reset()
        room = await rooms.get("lobby")
        assert await room.wait_closed(1) == [("ann", 1006)]
    stats = await rooms.wait_statistics(lambda stats: stats.sessions == 0)
    assert stats.parked_sessions == 0
    assert room.closed == [("ann", 1006)]


async def test_a_session_closed_by_another_while_parked_gets_its_close(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """Closing a parked session from elsewhere runs it on: its client gets the close."""
    async with connect(server, "lobby", "name=ann") as ann:
        await wait_parked(rooms, 1, 1)
        room = await rooms.get("lobby")
        (session,) = room.sessions.values()
        await session.close(4003, "kicked")
        assert await ann.close_code() == 4003
        assert await room.wait_closed(1) == [("ann", 4003)]


@pytest.mark.parametrize(
    "config",
    [RoomsConfig(park_after=PARK_AFTER, outbound_max_bytes=64 * 1024, close_timeout=0.2)],
)
async def test_a_broadcast_that_overflows_a_parked_session_closes_it_as_slow(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A parked session that does not read is closed as a slow consumer, as a live one is."""
    async with (
        open_raw(server, "/rooms/lobby/websocket?name=ann", rcvbuf=4096) as ann,
        connect(server, "lobby", "name=bob") as bob,
    ):
        await wait_parked(rooms, 2, 2)
        text = "x" * 20_000
        room = await rooms.get("lobby")
        while not room.closed:
            await bob.send(Shout(text=text))
            await trio.testing.wait_all_tasks_blocked()
        assert room.closed == [("ann", 1008)]
        assert rooms.statistics().slow_consumers == 1
        del ann


@pytest.mark.parametrize("config", [RoomsConfig(park_after=PARK_AFTER, ping_interval=0.05)])
async def test_a_parked_session_is_pinged_and_stays_parked_when_answered(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """Keepalive pings reach a parked session; its client's pongs keep it, still parked."""
    async with open_raw(server, "/rooms/lobby/websocket?name=ann") as ann:
        parks = await wait_parked(rooms, 1, 1)
        for _ in range(3):
            frame = await _next_control(ann)
            assert frame == PING
            await ann.send(client_frame(PONG, b""))
        await wait_parked(rooms, 1)
        assert rooms.statistics().parks == parks  # the pongs were taken while parked
        await ann.send_text(json.dumps({"type": "whisper", "text": "still here"}))
        assert json.loads(await ann.receive_text())["text"] == "still here"


@pytest.mark.parametrize(
    "config", [RoomsConfig(park_after=PARK_AFTER, ping_interval=0.05, ping_timeout=0.05)]
)
async def test_a_parked_session_whose_client_stops_answering_expires(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A parked session whose client does not answer the ping ends with 1006."""
    async with open_raw(server, "/rooms/lobby/websocket?name=ann") as ann:
        await wait_parked(rooms, 1, 1)
        assert await _next_control(ann) == PING
        room = await rooms.get("lobby")
        assert await room.wait_closed(1) == [("ann", 1006)]
    stats = await rooms.wait_statistics(lambda stats: stats.sessions == 0)
    assert stats.parked_sessions == 0


async def _next_control(client: RawClient) -> int | None:
    """The opcode of the next frame that is not text (skipping presence broadcasts)."""
    while True:
        frame = await client.receive_frame()
        if frame is None:
            return None
        if frame.opcode != 0x1:
            return frame.opcode
