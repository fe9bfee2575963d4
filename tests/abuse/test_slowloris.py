"""Slowloris: handshakes sent a byte at a time are cut off; real clients still get in fast."""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms, RoomsConfig

from ..chat_app import ChatRoom
from ..servers import Transport, start_server
from ..sockets import connect_socket, handshake_request, open_raw

HANDSHAKE_TIMEOUT = 0.5
SLOW_CLIENTS = 8
BYTE_INTERVAL = 0.05  # a whole handshake would take the slow clients about 8 s
DROP_SLACK = 1.0  # scheduling on a busy 2-core CI machine
CONNECT_BOUND = 1.0  # seconds for a legitimate client's handshake and first frame


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(handshake_timeout=HANDSHAKE_TIMEOUT)


@pytest.mark.parametrize(
    "via",
    [
        "embedded",
        "hypercorn",
    ],
)
async def test_slow_handshakes_are_dropped_while_real_clients_connect_quickly(
    rooms: Rooms[ChatRoom], nursery: trio.Nursery, via: Transport
) -> None:
    """Each slow client is dropped after handshake_timeout; legit connects stay fast."""
    port = await start_server(nursery, via, rooms)
    request = handshake_request("/rooms/lobby/websocket")
    dropped_after: list[float] = []
    answers: list[bytes] = []
    connect_times: list[float] = []

    async def slow_client() -> None:
        stream = await connect_socket(port)
        started = trio.current_time()
        async with stream, trio.open_nursery() as inner:

            async def drip() -> None:
                for byte in request:
                    try:
                        await stream.send_all(bytes([byte]))
                    except trio.BrokenResourceError:
                        return
                    await trio.sleep(BYTE_INTERVAL)

            inner.start_soon(drip)
            received = b""
            with trio.fail_after(HANDSHAKE_TIMEOUT + DROP_SLACK):
                try:
                    while chunk := await stream.receive_some(4096):
                        received += chunk
                except trio.BrokenResourceError:
                    pass  # reset: we were still sending
            dropped_after.append(trio.current_time() - started)
            answers.append(received)
            inner.cancel_scope.cancel()

    async def legit_clients(done: trio.Event) -> None:
        while not done.is_set():
            started = trio.current_time()
            with trio.fail_after(CONNECT_BOUND):
                async with open_raw(port, "/rooms/lobby/websocket?name=legit") as client:
                    assert '"userJoined"' in await client.receive_text()
            connect_times.append(trio.current_time() - started)

    with trio.fail_after(HANDSHAKE_TIMEOUT + DROP_SLACK + 5):
        async with trio.open_nursery() as outer:
            done = trio.Event()
            async with trio.open_nursery() as slow:
                for _ in range(SLOW_CLIENTS):
                    slow.start_soon(slow_client)
                outer.start_soon(legit_clients, done)
            done.set()
    assert len(dropped_after) == SLOW_CLIENTS
    assert min(dropped_after) >= HANDSHAKE_TIMEOUT - 0.05
    assert max(dropped_after) < HANDSHAKE_TIMEOUT + DROP_SLACK
    assert all(b" 101 " not in answer for answer in answers)
    assert len(connect_times) >= 5
    assert max(connect_times) < CONNECT_BOUND
    room = await rooms.get("lobby")
    with trio.fail_after(5):
        await room.wait_closed(len(connect_times))
    assert rooms.statistics().sessions == 0
