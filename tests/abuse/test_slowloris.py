"""Slowloris: handshakes and route bodies sent slowly are cut off; real clients get in fast."""

from __future__ import annotations

import pytest
import trio

import trio_rooms
from trio_rooms import Rooms, RoomsConfig

from ..chat_app import ChatRoom
from ..routes_app import AdminRoom
from ..servers import Transport, start_server
from ..sockets import connect_socket, handshake_request, open_raw

HANDSHAKE_TIMEOUT = 1.0
SLOW_CLIENTS = 8
BYTE_INTERVAL = 0.05  # a whole handshake would take the slow clients about 8 s
#: Bounds each test: past the slow clients' whole handshake, so that a timeout that did
#: not fire fails on what the client was answered (101, 200), not on this bound.
PATIENCE = 30.0


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
    """Each slow client is dropped after handshake_timeout, never answered 101; legit
    clients get in while the slow ones are held. (How fast is a benchmark's figure.)"""
    port = await start_server(nursery, via, rooms)
    request = handshake_request("/rooms/lobby/websocket")
    dropped_after: list[float] = []
    answers: list[bytes] = []
    connect_times: list[float] = []
    #: How many legit clients had got in when each slow one was dropped.
    in_by_drop: list[int] = []

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
                    await trio.sleep(BYTE_INTERVAL)  # sync-ok: slowloris drips

            inner.start_soon(drip)
            received = b""
            try:
                while chunk := await stream.receive_some(4096):
                    received += chunk
            except trio.BrokenResourceError:
                pass  # reset: we were still sending
            dropped_after.append(trio.current_time() - started)
            in_by_drop.append(len(connect_times))
            answers.append(received)
            inner.cancel_scope.cancel()

    async def legit_clients(done: trio.Event) -> None:
        while not done.is_set():
            started = trio.current_time()
            async with open_raw(port, "/rooms/lobby/websocket?name=legit") as client:
                assert '"userJoined"' in await client.receive_text()
            connect_times.append(trio.current_time() - started)

    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as outer:
            done = trio.Event()
            async with trio.open_nursery() as slow:
                for _ in range(SLOW_CLIENTS):
                    slow.start_soon(slow_client)
                outer.start_soon(legit_clients, done)
            done.set()
    assert len(dropped_after) == SLOW_CLIENTS
    assert min(dropped_after) >= HANDSHAKE_TIMEOUT - 0.05
    assert all(b" 101 " not in answer for answer in answers)
    assert min(in_by_drop) >= 1  # not kept waiting behind the slow ones
    room = await rooms.get("lobby")
    with trio.fail_after(PATIENCE):
        await room.wait_closed(len(connect_times))
    assert rooms.statistics().sessions == 0


# ------------------------------------------------------------------ route bodies

REQUEST_TIMEOUT = 0.5
SLOW_BODIES = 4
BODY_HEAD = (
    b"POST /rooms/hall/broadcast HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n"
)


async def _answer_until_eof(stream: trio.SocketStream) -> tuple[int, bytes]:
    """What the server sends until it closes: the response's status (0 for none) and bytes."""
    received = b""
    try:
        while chunk := await stream.receive_some(4096):
            received += chunk
    except trio.BrokenResourceError:
        pass  # reset: the client was still sending
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0
    return status, received


@pytest.mark.parametrize("via", ["embedded", "hypercorn"])
@pytest.mark.parametrize("pace", ["stalled", "dripped"])
async def test_a_slow_route_body_gets_408_and_the_route_never_runs(
    nursery: trio.Nursery, pace: str, via: Transport
) -> None:
    """A body not complete within request_timeout gets 408 and is closed, on both transports."""
    config = RoomsConfig(request_timeout=REQUEST_TIMEOUT)
    async with trio_rooms.open_rooms(AdminRoom, config=config) as rooms:
        port = await start_server(nursery, via, rooms)
        answered_after: list[float] = []
        statuses: list[int] = []

        async def slow_body() -> None:
            stream = await connect_socket(port)
            async with stream, trio.open_nursery() as inner:
                await stream.send_all(BODY_HEAD + b"{")
                started = trio.current_time()

                async def drip() -> None:
                    for byte in b'"message":"' + b"x" * 900:
                        await trio.sleep(BYTE_INTERVAL)  # sync-ok: slowloris drips
                        try:
                            await stream.send_all(bytes([byte]))
                        except trio.BrokenResourceError:
                            return

                if pace == "dripped":
                    inner.start_soon(drip)
                status, _ = await _answer_until_eof(stream)
                answered_after.append(trio.current_time() - started)
                statuses.append(status)
                inner.cancel_scope.cancel()

        with trio.fail_after(PATIENCE):  # the dripped body takes 45 s
            async with trio.open_nursery() as slow:
                for _ in range(SLOW_BODIES):
                    slow.start_soon(slow_body)
        assert statuses == [408] * SLOW_BODIES  # cut off mid-body: its timeout, nothing else
        assert min(answered_after) >= REQUEST_TIMEOUT - 0.05
        assert rooms.statistics().rooms == 0  # the route's room was never created


@pytest.mark.parametrize(
    ("target", "expected"), [(b"/rooms/lobby/info", 404), (b"/rooms/lobby/websocket", 400)]
)
async def test_the_embedded_server_answers_a_request_whose_body_it_will_not_read(
    rooms: Rooms[ChatRoom], nursery: trio.Nursery, target: bytes, expected: int
) -> None:
    """A request no route takes is answered and closed, its body unread: its status is
    the route's answer, not a timeout's (no 408, no drop without an answer)."""
    port = await start_server(nursery, "embedded", rooms)
    stream = await connect_socket(port)
    async with stream:
        await stream.send_all(BODY_HEAD.replace(b"/rooms/hall/broadcast", target) + b"{")
        with trio.fail_after(PATIENCE):
            status, received = await _answer_until_eof(stream)
    assert status == expected, received
    # The server lingers on the half-closed socket until we are gone, then frees the slot.
    with trio.fail_after(PATIENCE):
        await rooms.wait_statistics(lambda stats: stats.connections == 0)
