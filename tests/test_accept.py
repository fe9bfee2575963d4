"""The embedded server's accept loop and first read: bursts, addresses, pieces, no descriptors."""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Generator
from contextlib import contextmanager

import attrs
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, RoomsConfig, Session

from .sockets import handshake_request

BURST = 50


@attrs.frozen
class Noted(Message):
    pass


class AddressSession(Session[tuple[str, int] | None, Noted, Noted]):
    async def create_data(self, request: ConnectRequest) -> tuple[str, int] | None:
        return request.client

    async def on_message(self, message: Noted) -> None:
        pass


class AddressRoom(Room[AddressSession]):
    pass


async def _upgraded(stream: trio.SocketStream) -> bytes:
    """Read the server's answer to a handshake: its head."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = await stream.receive_some(4096)
        assert data, answer
        answer += data
    return answer


async def test_a_burst_of_clients_is_accepted_each_with_its_own_address(
    nursery: trio.Nursery,
) -> None:
    """Clients that all connected before the server accepted any get their 101 and address."""
    config = RoomsConfig(max_connections_per_address=2 * BURST)
    async with trio_rooms.open_rooms(AddressRoom, config=config) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(BURST)]
        try:
            for stream in streams:  # all in the backlog, or accepted, before any is read
                await stream.send_all(handshake_request("/rooms/burst/websocket"))
            for stream in streams:
                assert (await _upgraded(stream)).startswith(b"HTTP/1.1 101 ")
            await rooms.wait_statistics(lambda stats: stats.sessions == BURST)
            room = await rooms.get("burst")
            addresses = {session.data for session in room.sessions.values()}
            expected = {stream.socket.getsockname()[:2] for stream in streams}
            assert addresses == expected
        finally:
            for stream in streams:
                await stream.aclose()


async def test_a_request_that_arrives_in_pieces_after_the_accept_is_upgraded(
    nursery: trio.Nursery,
) -> None:
    """A client accepted before it sent anything, then sending its request in pieces, gets a 101."""
    async with trio_rooms.open_rooms(AddressRoom) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await rooms.wait_statistics(lambda stats: stats.connections == 1)  # accepted
            request = handshake_request("/rooms/pieces/websocket")
            for start in range(0, len(request), 16):
                await stream.send_all(request[start : start + 16])
                await trio.testing.wait_all_tasks_blocked()  # the server read it, and waits
            assert (await _upgraded(stream)).startswith(b"HTTP/1.1 101 ")
            await rooms.wait_statistics(lambda stats: stats.sessions == 1)


class _Signal(logging.Handler):
    """Sets ``logged`` at the accept loop's first complaint."""

    def __init__(self) -> None:
        super().__init__()
        self.logged = trio.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("accept returned"):
            self.records.append(record)
            self.logged.set()


@contextmanager
def _no_descriptor_left() -> Generator[None]:
    """Lower the soft limit of open files to what is open now: no new one opens."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_server_out_of_descriptors_logs_waits_and_accepts_once_it_can(
    nursery: trio.Nursery,
) -> None:
    """An accept failing with EMFILE is logged and retried: the waiting client is then served."""
    signal = _Signal()
    logger = logging.getLogger("trio_rooms")
    logger.addHandler(signal)
    try:
        async with trio_rooms.open_rooms(AddressRoom) as rooms:
            port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
            client = trio.socket.socket()  # its descriptor made while there are some
            with client:
                with _no_descriptor_left():
                    await client.connect(("127.0.0.1", port))
                    await signal.logged.wait()
                assert "EMFILE" in signal.records[0].getMessage()
                stream = trio.SocketStream(client)
                await stream.send_all(handshake_request("/rooms/full/websocket"))
                assert (await _upgraded(stream)).startswith(b"HTTP/1.1 101 ")
    finally:
        logger.removeHandler(signal)
