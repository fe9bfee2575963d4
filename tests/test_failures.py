"""Failures stay where they happen: a hook, a room or a stuck handler never stops the server."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, RoomsConfig, Session, testing
from trio_rooms._core.rooms import registry_of

from .chat_app import ChatRoom, UserJoined, Whisper
from .peer import connect
from .servers import Transport, start_server
from .sockets import handshake_request


@attrs.frozen
class Hang(Message):
    pass


@attrs.frozen
class Done(Message):
    pass


class StuckSession(Session[None, Done, Hang]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.send(Done())

    async def on_message(self, message: Hang) -> None:
        await trio.sleep_forever()

    async def on_close(self, code: int, reason: str) -> None:
        raise RuntimeError("on_close fails too")


class StuckRoom(Room[StuckSession]):
    pass


async def test_shutdown_is_bounded_even_with_a_stuck_handler(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that never returns is cancelled after close_timeout; shutdown completes."""
    config = RoomsConfig(close_timeout=3, shutdown_timeout=60)
    start = trio.current_time()
    async with (
        trio_rooms.open_rooms(StuckRoom, config=config) as rooms,
        testing.connect(rooms, "stuck") as client,
    ):
        assert await client.receive() == Done()
        client.send(Hang())
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(registry_of(rooms).shutdown)  # what leaving open_rooms does
            with pytest.raises(trio_rooms.ConnectionClosedError) as closed:
                await client.receive()
            assert closed.value.code == 1001
    assert trio.current_time() - start <= 3 * config.close_timeout
    assert "on_close fails too" in caplog.text


class SetupSession(Session[None, Done, Hang, "SetupRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        self.room.in_setup.set()
        await trio.sleep_forever()

    async def on_message(self, message: Hang) -> None:
        pass


class SetupRoom(Room[SetupSession]):
    async def on_start(self) -> None:
        self.in_setup = trio.Event()


async def test_a_hard_shutdown_cuts_a_session_stuck_in_its_setup(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """Past shutdown_timeout, the room ends a session whose create_data never returns."""
    config = RoomsConfig(close_timeout=3, shutdown_timeout=10)
    ended = trio.Event()
    with trio.fail_after(config.shutdown_timeout + 4 * config.close_timeout):
        async with trio_rooms.open_rooms(SetupRoom, config=config) as rooms:
            port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(handshake_request("/rooms/setup/websocket"))

            async def read_until_closed() -> None:
                while await stream.receive_some(65536):
                    pass
                ended.set()

            nursery.start_soon(read_until_closed)
            room = await rooms.get("setup")
            await room.in_setup.wait()
        # open_rooms returned: the room cut the session its transport's task still ran.
    with trio.fail_after(5):
        await ended.wait()
    await stream.aclose()
    assert rooms.statistics().sessions == 0


class FailingRoom(ChatRoom):
    async def on_start(self) -> None:
        if self.name == "broken":
            raise RuntimeError("this room cannot start")
        await super().on_start()


async def test_a_room_that_fails_to_start_closes_its_connection_with_1011(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, transport: Transport
) -> None:
    """on_start raising closes that connection with 1011; other rooms keep working."""
    async with trio_rooms.open_rooms(FailingRoom) as rooms:
        port = await start_server(nursery, transport, rooms)
        async with connect(port, "broken") as client:
            assert await client.close_code() == 1011
        assert "this room cannot start" in caplog.text
        async with connect(port, "fine") as client:
            assert isinstance(await client.receive(), UserJoined)
            await client.send(Whisper(text="ok"))
            await client.receive()
        nursery.cancel_scope.cancel()


async def test_many_broken_connections_do_not_stop_the_server(port: int) -> None:
    """Resets, garbage and half handshakes each end only their own connection."""
    for payload in [b"", b"\x00\xff garbage\r\n\r\n", b"GET /rooms/x/websocket HTTP/1.1\r\n"]:
        for _ in range(20):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(payload)
            await trio.aclose_forcefully(stream)
    async with connect(port, "lobby") as client:
        assert isinstance(await client.receive(), UserJoined)
