"""Attacks on the ASGI path behind hypercorn: resets around the close, bursts, a reader
that stops reading.

Each attack ends its own connection only: the room hears the session leave, nothing
is logged as a failure (a reset is the client's right), no connection is left
counted, and a canary client is answered as before.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import Rooms, RoomsConfig

from .chat_app import Chat, ChatRoom, UserJoined, Whisper
from .peer import Peer, connect
from .servers import start_server
from .sockets import CLOSE, TEXT, RawClient, client_frame, close_payload, open_raw


@pytest.fixture
async def rooms() -> AsyncGenerator[Rooms[ChatRoom]]:
    config = RoomsConfig(max_connections_per_address=1000, close_timeout=1.0, rate_limit=None)
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
        yield rooms


@pytest.fixture
async def port(rooms: Rooms[ChatRoom], nursery: trio.Nursery) -> int:
    return await start_server(nursery, "hypercorn", rooms)


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelname in ("WARNING", "ERROR", "CRITICAL") or record.exc_info
    ]


async def _served(canary: Peer, text: str) -> None:
    await canary.send(Whisper(text=text))
    heard = await canary.receive_until(Chat)
    assert isinstance(heard, Chat)
    assert heard.text == text


async def _settled(rooms: Rooms[ChatRoom], sessions: int) -> None:
    with trio.fail_after(10):
        await rooms.wait_statistics(lambda stats: stats.sessions == sessions)


def _leave(code: int) -> bytes:
    return client_frame(TEXT, orjson.dumps({"type": "leave", "code": code}))


#: What the client does after joining, then it resets its connection.
ATTACKS: dict[str, list[bytes]] = {
    "reset as the server closes": [_leave(4000)],
    "reset after answering the server's close": [
        _leave(4000),
        client_frame(CLOSE, close_payload(4000)),
    ],
    "reset after its own close": [client_frame(CLOSE, close_payload(1000))],
    "reset mid-frame": [client_frame(TEXT, b'{"type": "message", "text": "cut')[:-4]],
    "reset after a burst of messages": [
        client_frame(TEXT, orjson.dumps({"type": "whisper", "text": f"w{n}"})) for n in range(200)
    ],
}


@pytest.mark.parametrize("attack", ATTACKS)
async def test_a_reset_around_the_close_ends_only_its_connection(
    rooms: Rooms[ChatRoom], port: int, caplog: pytest.LogCaptureFixture, attack: str
) -> None:
    """Five times over: the session ends, no failure is logged, the canary is served."""
    async with connect(port, "lobby", "name=canary") as canary:
        await canary.receive_until(UserJoined)
        for attempt in range(5):
            async with open_raw(port, "/rooms/lobby/websocket?name=attacker") as client:
                await _settled(rooms, 2)
                await client.send(b"".join(ATTACKS[attack]))
                if attack == "reset as the server closes":
                    frame = await client.receive_frame()
                    while frame is not None and frame.opcode != CLOSE:
                        frame = await client.receive_frame()
                await trio.testing.wait_all_tasks_blocked()
                client.reset()
            await _settled(rooms, 1)
            await _served(canary, f"still here {attempt}")
        await trio.testing.wait_all_tasks_blocked()
    assert _failures(caplog) == []


async def test_a_burst_of_clients_that_reset_at_once_leaves_the_room_serving(
    rooms: Rooms[ChatRoom], port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """100 clients join, all reset in the same turn: all leave, the canary is served."""
    async with connect(port, "lobby", "name=canary") as canary:
        await canary.receive_until(UserJoined)
        clients: list[RawClient] = []
        async with trio.open_nursery() as nursery:

            async def join() -> None:
                async with open_raw(port, "/rooms/lobby/websocket?name=burst") as client:
                    clients.append(client)
                    await trio.sleep_forever()

            for _ in range(100):
                nursery.start_soon(join)
            await _settled(rooms, 101)
            for client in clients:
                client.reset()
            nursery.cancel_scope.cancel()
        await _settled(rooms, 1)
        await _served(canary, "after the burst")
        await trio.testing.wait_all_tasks_blocked()
    assert _failures(caplog) == []


@pytest.mark.parametrize("server_closes", [True, False], ids=["server closes", "shutdown"])
async def test_a_client_that_hangs_up_without_answering_the_close_logs_nothing(
    rooms: Rooms[ChatRoom], port: int, caplog: pytest.LogCaptureFixture, server_closes: bool
) -> None:
    """The server's close frame read, the socket closed (FIN) unanswered: nothing logged."""
    async with connect(port, "lobby", "name=canary") as canary:
        await canary.receive_until(UserJoined)
        for attempt in range(3):
            async with open_raw(port, "/rooms/lobby/websocket?name=rude") as client:
                await _settled(rooms, 2)
                await client.send(_leave(4000))
                frame = await client.receive_frame()
                while frame is not None and frame.opcode != CLOSE:
                    frame = await client.receive_frame()
                assert frame is not None
                await client.stream.aclose()
                await trio.testing.wait_all_tasks_blocked()
            await _settled(rooms, 1)
            await _served(canary, f"still here {attempt}")
        await trio.testing.wait_all_tasks_blocked()
    assert _failures(caplog) == []


async def test_a_client_that_hangs_up_after_the_close_timeout_logs_nothing(
    rooms: Rooms[ChatRoom], port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's close unanswered past close_timeout, then the client hangs up.

    The session ended without the client's answer; hypercorn then puts the call's
    ``websocket.disconnect`` in its queue: that must not fail its connection.
    """
    async with connect(port, "lobby", "name=canary") as canary:
        await canary.receive_until(UserJoined)
        for attempt in range(3):
            async with open_raw(port, "/rooms/lobby/websocket?name=silent") as client:
                await _settled(rooms, 2)
                await client.send(_leave(4000))
                frame = await client.receive_frame()
                while frame is not None and frame.opcode != CLOSE:
                    frame = await client.receive_frame()
                assert frame is not None  # read, never answered
                with trio.fail_after(10):  # given up on after close_timeout: the call ends
                    await rooms.wait_statistics(lambda stats: stats.connections == 1)
                await trio.testing.wait_all_tasks_blocked()
                await client.stream.aclose()
                await trio.testing.wait_all_tasks_blocked()
            await _served(canary, f"still here {attempt}")
    assert _failures(caplog) == []
