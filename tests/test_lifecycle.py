"""Handshake, routing, shutdown and keepalive of the embedded server, over real sockets."""

from __future__ import annotations

import attrs
import orjson
import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

import trio_rooms
from trio_rooms import Rooms, RoomsConfig

from .chat_app import Chat, ChatRoom, SendChat, UserJoined, Whisper
from .peer import connect
from .servers import Transport, start_server
from .sockets import open_raw


async def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        response = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                response += chunk
    return response


def _upgrade(target: str) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/rooms/bad%20name/websocket", 400),
        ("/rooms/../websocket", 400),
        ("/rooms/%2e%2e/websocket", 400),
        ("/rooms/a/b/websocket", 400),
        ("/rooms/" + "x" * 129 + "/websocket", 400),
        ("/rooms/lobby/websocket?format=xml", 400),
        ("/rooms/lobby", 404),
        ("/elsewhere/lobby/websocket", 404),
        ("/", 404),
    ],
)
async def test_bad_targets_are_answered_before_any_room_exists(
    port: int, rooms: Rooms[ChatRoom], target: str, status: int
) -> None:
    """An invalid room name gets 400 and another path 404, as HTTP, and no room is created."""
    response = await _exchange(port, _upgrade(target))
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    assert rooms.statistics().rooms == 0


async def test_a_plain_http_request_to_a_room_gets_400(port: int, rooms: Rooms[ChatRoom]) -> None:
    """A request without the upgrade headers is told that a websocket was expected."""
    request = b"GET /rooms/lobby/websocket HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = await _exchange(port, request)
    assert response.startswith(b"HTTP/1.1 400 ")
    assert response.endswith(b"Expected websocket")
    assert rooms.statistics().rooms == 0


@pytest.mark.parametrize("config", [RoomsConfig(handshake_timeout=0.2)])
@pytest.mark.embedded_only("hypercorn has its own request timeouts, not handshake_timeout")
async def test_the_handshake_timeout_drops_a_client_that_never_finishes(port: int) -> None:
    """A client that never completes its request is disconnected; others still connect."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /rooms/lobby/websocket HTTP/1.1\r\nHost: x\r\n")
        with trio.fail_after(5):
            assert await stream.receive_some(100) == b""
    async with connect(port, "lobby") as client:
        assert isinstance(await client.receive(), UserJoined)


async def test_connect_request_carries_the_handshake(port: int, rooms: Rooms[ChatRoom]) -> None:
    """create_data sees the path, query, headers, subprotocols and client address."""
    async with connect(port, "lobby", "name=dora&x=1") as client:
        await client.receive_until(UserJoined)
        room = await rooms.get("lobby")
        (session,) = room.sessions.values()
        request = session.request
        assert (request.room, request.path) == ("lobby", "/rooms/lobby/websocket")
        assert request.query == {"name": "dora", "x": "1"}
        assert request.header("HOST") == "127.0.0.1"
        assert request.client is not None
        assert request.client[0] == "127.0.0.1"
        assert session.format == "json"
        assert session.data.name == "dora"


async def test_leaving_open_rooms_closes_every_session_with_1001(transport: Transport) -> None:
    """Shutdown sends 1001 to every client, runs on_close for each and on_stop."""
    codes: list[int] = []

    async def client(port: int, room: str, *, task_status: trio.TaskStatus[None]) -> None:
        async with connect(port, room) as peer:
            await peer.receive_until(UserJoined)
            task_status.started()
            codes.append(await peer.close_code())

    with trio.fail_after(10):
        async with trio.open_nursery() as server:
            # The clients outlive the rooms: they read the close frames of the shutdown.
            async with trio.open_nursery() as clients:  # noqa: SIM117 - nesting order matters
                async with trio_rooms.open_rooms(ChatRoom) as rooms:
                    port = await start_server(server, transport, rooms)
                    await clients.start(client, port, "a")
                    await clients.start(client, port, "b")
                    room_a, room_b = await rooms.get("a"), await rooms.get("b")
            server.cancel_scope.cancel()
    assert codes == [1001, 1001]
    assert room_a.closed == [("anon", 1001)]
    assert room_b.closed == [("anon", 1001)]
    assert room_a.stopped.is_set()
    assert room_b.stopped.is_set()
    assert rooms.statistics().rooms == 0


async def test_cancelling_a_scope_around_open_rooms_still_sends_1001(
    transport: Transport,
) -> None:
    """Cancellation from outside (Ctrl-C) is a graceful shutdown too: 1001, not 1006."""
    codes: list[int] = []

    async def client(port: int, *, task_status: trio.TaskStatus[None]) -> None:
        async with connect(port, "lobby") as peer:
            await peer.receive_until(UserJoined)
            task_status.started()
            codes.append(await peer.close_code())

    with trio.fail_after(10):
        async with trio.open_nursery() as clients:
            with trio.CancelScope() as outside:
                async with (
                    trio_rooms.open_rooms(ChatRoom) as rooms,
                    trio.open_nursery() as server,
                ):
                    port = await start_server(server, transport, rooms)
                    await clients.start(client, port)
                    outside.cancel()
                    await trio.sleep_forever()
    assert codes == [1001]


async def test_cancelling_the_server_closes_its_sessions_with_1001(
    rooms: Rooms[ChatRoom], transport: Transport
) -> None:
    """Cancelling the server stops accepting and closes its sessions with 1001."""
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, transport, rooms)
        async with connect(port, "lobby") as client:
            await client.receive_until(UserJoined)
            nursery.cancel_scope.cancel()
            with trio.fail_after(10):
                assert await client.close_code() == 1001
    room = await rooms.get("lobby")
    assert room.closed == [("anon", 1001)]
    with pytest.raises(OSError):  # noqa: PT011 - connection refused, spelled per platform
        await trio.open_tcp_stream("127.0.0.1", port)


@attrs.frozen
class _Note(trio_rooms.Message):
    text: str


class _SilentSession(trio_rooms.Session[None, _Note, _Note]):
    """Sends nothing: its writer has never written when the server stops."""

    async def create_data(self, request: trio_rooms.ConnectRequest) -> None:
        return None

    async def on_message(self, message: _Note) -> None:
        pass


class _SilentRoom(trio_rooms.Room[_SilentSession]):
    pass


async def test_cancelling_the_server_closes_a_session_never_sent_a_frame_with_1001(
    transport: Transport,
) -> None:
    """Sessions that were never sent a frame are closed with 1001 too when their server stops."""
    codes: list[int] = []

    async def client(port: int, *, task_status: trio.TaskStatus[None]) -> None:
        async with connect(port, "quiet") as peer:
            task_status.started()
            codes.append(await peer.close_code())

    # Several: which of a session's tasks sees the cancellation first varies (its writer
    # waits for its first frame unshielded, and must write the close all the same).
    count = 12
    with trio.fail_after(10):
        # The clients outlive the server: they read the close frames of the shutdown.
        async with trio.open_nursery() as clients:  # noqa: SIM117 - nesting order matters
            async with trio_rooms.open_rooms(_SilentRoom) as rooms, trio.open_nursery() as server:
                port = await start_server(server, transport, rooms)
                for _ in range(count):
                    await clients.start(client, port)
                await rooms.wait_statistics(lambda stats: stats.sessions == count)
                server.cancel_scope.cancel()
    assert codes == [1001] * count


@pytest.mark.parametrize("config", [RoomsConfig(ping_interval=0.05, ping_timeout=0.2)])
@pytest.mark.embedded_only("keepalive timeouts are the embedded server's; hypercorn only pings")
async def test_a_peer_that_stops_answering_pings_is_closed(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Keepalive: a silent peer is closed after ping_interval + ping_timeout; a live one stays."""
    async with connect(port, "lobby", "name=live") as live:
        await live.receive_until(UserJoined)
        # A raw client that completes the handshake, then never reads or answers a ping.
        mute = await trio.open_tcp_stream("127.0.0.1", port)
        async with mute:
            ws = WSConnection(ConnectionType.CLIENT)
            await mute.send_all(
                ws.send(Request(host="127.0.0.1", target="/rooms/lobby/websocket?name=mute"))
            )
            while not any(isinstance(event, AcceptConnection) for event in ws.events()):
                ws.receive_data(await mute.receive_some(65536))
            room = await rooms.get("lobby")
            with trio.fail_after(5):
                closed = await room.wait_closed(1)
            assert closed == [("mute", 1006)]
        # The live client answered every ping meanwhile and still works.
        await live.send(Whisper(text="still alive"))
        reply = await live.receive_until(Chat)
        assert isinstance(reply, Chat)
        assert reply.text == "still alive"


async def test_room_on_start_runs_before_the_first_session_is_admitted(
    rooms: Rooms[ChatRoom],
) -> None:
    """Concurrent first connections share one room, created once, started before admission."""
    first, second = await rooms.get("fresh"), await rooms.get("fresh")
    assert first is second
    assert first.started


async def test_statistics_count_messages_and_closes(port: int, rooms: Rooms[ChatRoom]) -> None:
    """statistics() counts rooms, sessions, messages in and out, invalid frames and closes."""
    async with connect(port, "lobby") as client:
        await client.receive_until(UserJoined)
        await client.send(SendChat(text="one"))
        await client.receive()
        await client.ws.send_message("{}")
        await client.ws.get_message()
        stats = rooms.statistics()
        assert (stats.rooms, stats.sessions) == (1, 1)
        assert stats.messages_in == 2
        assert stats.messages_out == 3  # joined, the chat, the error frame
        assert stats.invalid == 1
    room = await rooms.get("lobby")
    with trio.fail_after(5):
        await room.wait_closed(1)
    assert rooms.statistics().sessions == 0


async def test_the_client_that_made_a_room_is_admitted_before_the_next_one(port: int) -> None:
    """20 new rooms: the first client, upgraded first, hears the second one join."""
    with trio.fail_after(20):
        for n in range(20):
            async with (
                open_raw(port, f"/rooms/fresh{n}/websocket?name=first") as first,
                open_raw(port, f"/rooms/fresh{n}/websocket?name=second") as second,
            ):
                assert '"name":"second"' in await second.receive_text()
                names = [orjson.loads(await first.receive_text())["name"] for _ in range(2)]
                assert names == ["first", "second"]
