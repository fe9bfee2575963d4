"""Opening a connection is bounded: servers that accept TCP and never open a WebSocket."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import final

import pytest
import trio

import trio_rooms
from trio_rooms import ConnectionClosedError, Rooms
from trio_rooms.client import (
    ConnectError,
    ConnectionRejectedError,
    ConnectTimeoutError,
    Reconnected,
    ReconnectPolicy,
    RoomClient,
    open_room_client,
)

from ..chat_app import ChatRoom, Echo, Leave, SendChat, UserJoined
from .half_open import Behaviour, HalfOpenListener

SERVER = (UserJoined, Echo)
CLIENT = (SendChat, Leave)
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)
#: Far longer than any test may take: a drop must fail the attempt at once, not time out.
PATIENT = 60.0

Client = RoomClient[UserJoined | Echo, SendChat | Leave]


def _url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/rooms/lobby/websocket"


async def _connect_error(port: int, connect_timeout: float = 10.0) -> ConnectError:
    """The error ``open_room_client`` raises against 127.0.0.1:``port``."""
    with trio.fail_after(10), pytest.raises(ConnectError) as raised:
        async with open_room_client(_url(port), SERVER, CLIENT, connect_timeout=connect_timeout):
            pytest.fail("connected")
    return raised.value


@pytest.mark.parametrize(
    ("behaviour", "how"),
    [("reset", "reset the connection"), ("close", "closed the connection")],
)
async def test_a_drop_during_the_handshake_fails_the_first_connect_at_once(
    nursery: trio.Nursery, behaviour: Behaviour, how: str
) -> None:
    """A drop before the handshake answer raises ConnectError at once, not at the timeout."""
    listener = HalfOpenListener(behaviour)
    port: int = await nursery.start(listener.serve)
    error = await _connect_error(port, connect_timeout=PATIENT)
    assert not isinstance(error, ConnectTimeoutError)
    assert f"{how} during the WebSocket handshake" in str(error)
    assert isinstance(error, OSError)
    if behaviour == "reset":
        assert isinstance(error.__cause__, trio.BrokenResourceError)
    assert listener.accepted == 1


@pytest.mark.parametrize("behaviour", ["silent", "upgrade_then_silent"])
async def test_a_server_that_never_answers_times_out(
    nursery: trio.Nursery, behaviour: Behaviour
) -> None:
    """No handshake answer, or no session frame, within connect_timeout raises the timeout."""
    listener = HalfOpenListener(behaviour)
    port: int = await nursery.start(listener.serve)
    error = await _connect_error(port, connect_timeout=0.2)
    assert isinstance(error, ConnectTimeoutError)
    assert isinstance(error, TimeoutError)
    assert error.timeout == 0.2
    step = "WebSocket handshake" if behaviour == "silent" else "session frame"
    assert f"the {step} to 127.0.0.1:{port} was not through" in str(error)


async def test_a_drop_before_the_session_frame_fails_the_first_connect(
    nursery: trio.Nursery,
) -> None:
    """A server that upgrades and then drops raises ConnectError instead of retrying forever."""
    listener = HalfOpenListener("upgrade_then_close")
    port: int = await nursery.start(listener.serve)
    error = await _connect_error(port, connect_timeout=PATIENT)
    assert not isinstance(error, ConnectTimeoutError)
    assert "during the session frame" in str(error)
    assert listener.accepted == 1


async def test_a_server_that_is_not_a_websocket_server_fails_at_once(
    nursery: trio.Nursery,
) -> None:
    """Bytes that are not an HTTP answer raise ConnectError naming the protocol error."""
    listener = HalfOpenListener("not_http")
    port: int = await nursery.start(listener.serve)
    error = await _connect_error(port, connect_timeout=PATIENT)
    assert f"the server at 127.0.0.1:{port} did not answer as a WebSocket server" in str(error)


async def test_a_refused_tcp_connection_raises_connect_error() -> None:
    """Nothing listening raises ConnectError, an OSError that says the connection was refused."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    error = await _connect_error(port)
    assert str(error).startswith(f"could not connect to 127.0.0.1:{port}: ")
    assert "Connection refused" in str(error)
    assert isinstance(error.__cause__, OSError)


@pytest.mark.parametrize("name", ["connect_timeout", "close_timeout"])
@pytest.mark.parametrize("timeout", [0, -1.0, math.nan])
async def test_timeouts_must_be_positive(name: str, timeout: float) -> None:
    """A connect_timeout or close_timeout that is not > 0 raises ValueError before connecting."""
    connect, close = (timeout, 5.0) if name == "connect_timeout" else (10.0, timeout)
    with pytest.raises(ValueError, match=f"{name} must be > 0"):
        async with open_room_client(
            _url(1), SERVER, CLIENT, connect_timeout=connect, close_timeout=close
        ):
            pass


@pytest.mark.parametrize("behaviour", ["upgrade_then_silent", "upgrade_then_deaf"])
async def test_aclose_gives_up_after_close_timeout(
    nursery: trio.Nursery, behaviour: Behaviour
) -> None:
    """Against a server that never answers the close, or stopped reading, aclose ends in time."""
    listener = HalfOpenListener(behaviour)
    port: int = await nursery.start(listener.serve)
    # Far more than the socket buffers hold: the writes block on a server that stopped reading.
    queued = [SendChat(text="x" * 2**20) for _ in range(32)]
    with trio.fail_after(3):
        async with open_room_client(
            _url(port), SERVER, CLIENT, resume=False, close_timeout=0.2
        ) as client:
            for message in queued:
                client.send(message)
        assert not client.connected


# ---------------------------------------------------------------------------- reconnects


@final
class _Service:
    """A ``serve``-style function run in the background until stopped."""

    def __init__(self) -> None:
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    async def run(
        self,
        serve: Callable[..., Awaitable[None]],
        *args: object,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            with self._scope:
                await serve(*args, task_status=task_status)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Cancel it and wait until it has returned (its port is free again)."""
        self._scope.cancel()
        await self._stopped.wait()


@asynccontextmanager
async def _serve_then_go_away(
    nursery: trio.Nursery, rooms: Rooms[ChatRoom], policy: ReconnectPolicy, connect_timeout: float
) -> AsyncGenerator[tuple[int, Client]]:
    """A client of a real server on ``port``; the server goes away once the client is known."""
    server = _Service()
    port: int = await nursery.start(server.run, trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    async with open_room_client(
        _url(port), SERVER, CLIENT, reconnect=policy, connect_timeout=connect_timeout
    ) as client:
        assert isinstance(await client.receive(), UserJoined)
        with trio.fail_after(10):
            await server.stop()
            await client.wait_disconnected()
        yield port, client


async def _receive_until_it_raises(client: Client) -> None:
    while True:
        await client.receive()


def _timeout_for(behaviour: Behaviour) -> float:
    """A short connect_timeout where the listener is silent; else one no test reaches."""
    return 0.2 if behaviour == "silent" else PATIENT


@pytest.mark.parametrize("behaviour", ["reset", "close", "silent"])
async def test_half_open_reconnects_are_retried_until_the_server_is_back(
    nursery: trio.Nursery, rooms: Rooms[ChatRoom], behaviour: Behaviour
) -> None:
    """Reconnects that a half-open listener fails are retried with backoff; the session resumes."""
    timeout = _timeout_for(behaviour)
    async with _serve_then_go_away(nursery, rooms, FAST, timeout) as (port, client):
        first = client.session_id
        with trio.fail_after(10):
            listener = HalfOpenListener(behaviour)
            half_open = _Service()
            await nursery.start(half_open.run, listener.serve, port)
            await listener.wait_accepted(2)
            await half_open.stop()
            await nursery.start(
                _Service().run, trio_rooms.serve_websocket, rooms, "127.0.0.1", port
            )
            event = await client.events.receive()
        assert isinstance(event, Reconnected)
        assert event.attempts >= 3
        assert (event.code, event.resumed, event.session_id) == (1001, True, first)
        assert client.connected


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        ("reset", "reset the connection during the WebSocket handshake"),
        ("close", "closed the connection during the WebSocket handshake"),
        ("silent", "was not through within connect_timeout=0.2 s"),
    ],
)
async def test_reconnecting_to_a_half_open_listener_gives_up_after_max_attempts(
    nursery: trio.Nursery, rooms: Rooms[ChatRoom], behaviour: Behaviour, failure: str
) -> None:
    """When every reconnect meets the half-open listener, receive raises once attempts are spent."""
    # Spaced out so that the listener holds the port well before the last attempt.
    policy = ReconnectPolicy(initial_delay=0.25, max_delay=0.25, jitter=0, max_attempts=3)
    timeout = _timeout_for(behaviour)
    async with _serve_then_go_away(nursery, rooms, policy, timeout) as (port, client):
        listener = HalfOpenListener(behaviour)
        await nursery.start(listener.serve, port)
        with trio.fail_after(10), pytest.raises(ConnectionClosedError) as closed:
            await _receive_until_it_raises(client)
        assert "gave up reconnecting after 3 attempts" in closed.value.reason
        assert isinstance(closed.value.__cause__, ConnectError)
        assert failure in str(closed.value.__cause__)
        assert listener.accepted >= 1


async def test_a_rejected_reconnect_ends_the_client(
    nursery: trio.Nursery, rooms: Rooms[ChatRoom]
) -> None:
    """A reconnect answered with HTTP 403 raises ConnectionRejectedError and is not retried."""
    async with _serve_then_go_away(nursery, rooms, FAST, PATIENT) as (port, client):
        listener = HalfOpenListener("forbidden")
        await nursery.start(listener.serve, port)
        with trio.fail_after(10), pytest.raises(ConnectionRejectedError) as rejected:
            await _receive_until_it_raises(client)
        assert rejected.value.status_code == 403
        assert listener.accepted == 1
        with pytest.raises(trio.EndOfChannel):
            await client.events.receive()
