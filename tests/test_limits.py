"""Admission and abuse limits: authorize, origins, connection caps, room capacity,
rate limit and invalid-frame streaks, on both transports."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Reject, Room, Rooms, RoomsConfig, Session
from trio_rooms._core.ratelimit import TokenBucket
from trio_rooms._core.rooms import registry_of

from .servers import Transport, start_server
from .sockets import (
    BINARY,
    CLOSE,
    TEXT,
    RawClient,
    client_frame,
    connect_socket,
    handshake_request,
    raw_handshake,
    read_http_response,
)

KEY = "open-sesame"


@attrs.frozen
class Hello(Message):
    text: str


class GuardedSession(Session[None, Hello, Hello]):
    """Echoes; lets in only clients with ``?key=open-sesame``."""

    @classmethod
    async def authorize(cls, request: ConnectRequest) -> None:
        key = request.query.get("key")
        if key is None:
            raise Reject(401, "a key is required")
        if key == "boom":
            raise RuntimeError("the key store is down")
        if key == "slow":
            await trio.sleep_forever()
        if key != KEY:
            raise Reject(403, "wrong key")

    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Hello) -> None:
        self.send(message)


class GuardedRoom(Room[GuardedSession]):
    pass


@pytest.fixture
async def rooms(config: RoomsConfig) -> AsyncGenerator[Rooms[GuardedRoom]]:
    async with trio_rooms.open_rooms(GuardedRoom, config=config) as rooms:
        yield rooms


def _path(room: str = "lobby", key: str | None = KEY) -> str:
    return f"/rooms/{room}/websocket" + (f"?key={key}" if key is not None else "")


async def _status(port: int, path: str, *, extra: str = "") -> tuple[int, bytes]:
    """The HTTP status the server answers a handshake for ``path`` with, and its body."""
    stream = await connect_socket(port)
    async with stream:
        await stream.send_all(handshake_request(path, extra=extra))
        status, _, rest = await read_http_response(stream)
        if status != 101:
            while chunk := await _receive_or_empty(stream):
                rest += chunk
        return status, rest


async def _receive_or_empty(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return b""


async def _connect(port: int, path: str = _path()) -> RawClient:
    return await raw_handshake(await connect_socket(port), path)


async def _echo(client: RawClient, text: str) -> None:
    await client.send_text(orjson.dumps({"type": "hello", "text": text}).decode())
    assert orjson.loads(await client.receive_text()) == {"type": "hello", "text": text}


async def _connections(rooms: Rooms[Any], count: int) -> None:
    """Wait (at most 5 s) until the server counts ``count`` open connections."""
    with trio.fail_after(5):
        await rooms.wait_statistics(lambda stats: stats.connections == count)


# ----------------------------------------------------------------- authorize


async def test_authorize_rejects_before_the_upgrade_and_creates_no_room(
    port: int, rooms: Rooms[GuardedRoom]
) -> None:
    status, body = await _status(port, _path(key=None))
    assert (status, body) == (401, b"a key is required")
    status, body = await _status(port, _path(key="nope"))
    assert (status, body) == (403, b"wrong key")
    assert rooms.statistics().rooms == 0
    client = await _connect(port)
    async with client.stream:
        await _echo(client, "in")
        assert rooms.statistics().sessions == 1


async def test_authorize_failures_answer_500_and_timeouts_503(
    port: int, rooms: Rooms[GuardedRoom], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "trio_rooms"):
        assert (await _status(port, _path(key="boom")))[0] == 500
    assert "authorize() failed" in caplog.text
    assert rooms.statistics().rooms == 0


@pytest.mark.parametrize("config", [RoomsConfig(handshake_timeout=0.2)])
async def test_a_slow_authorize_is_bounded_by_the_handshake_timeout(
    port: int, rooms: Rooms[GuardedRoom]
) -> None:
    with trio.fail_after(5):
        status, _ = await _status(port, _path(key="slow"))
    assert status == 503
    assert rooms.statistics().rooms == 0


async def test_a_thousand_rejected_attempts_leave_nothing_behind(
    port: int, rooms: Rooms[GuardedRoom], transport: Transport
) -> None:
    fds = len(os.listdir("/proc/self/fd"))

    async def attempts(count: int) -> None:
        for _ in range(count):
            assert (await _status(port, _path(key="nope")))[0] == 403

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(attempts, 100)
    stats = rooms.statistics()
    assert (stats.rooms, stats.sessions) == (0, 0)
    await _connections(rooms, 0)
    if transport == "embedded":  # hypercorn keeps its own bookkeeping
        assert len(os.listdir("/proc/self/fd")) <= fds


async def test_authorize_runs_with_a_factory_that_is_not_the_class(
    nursery: trio.Nursery, transport: Transport
) -> None:
    """A lambda hides the session class: the room is created to find it, then the
    client is refused all the same."""
    async with trio_rooms.open_rooms(lambda name: GuardedRoom(name)) as rooms:
        port = await start_server(nursery, transport, rooms)
        assert (await _status(port, _path(key=None)))[0] == 401
        assert rooms.statistics().sessions == 0
        nursery.cancel_scope.cancel()


def test_reject_takes_only_error_statuses() -> None:
    assert str(Reject(401, "no")) == "401 no"
    assert Reject().status == 403
    with pytest.raises(ValueError, match="400-599"):
        Reject(302, "elsewhere")


# ------------------------------------------------------------------- origins


@pytest.mark.parametrize(
    "config", [RoomsConfig(allowed_origins=["https://Chat.example.com/", "http://localhost:8000"])]
)
async def test_the_origin_allow_list(port: int, rooms: Rooms[GuardedRoom]) -> None:
    evil = await _status(port, _path(), extra="Origin: https://evil.example.com\r\n")
    assert evil == (403, b"Forbidden: this origin is not allowed")
    assert rooms.statistics().rooms == 0
    for origin in ("https://chat.example.com", "HTTP://LOCALHOST:8000"):
        stream = await connect_socket(port)
        async with stream:
            await stream.send_all(handshake_request(_path(), extra=f"Origin: {origin}\r\n"))
            assert (await read_http_response(stream))[0] == 101
    client = await _connect(port)  # no Origin: not a browser
    async with client.stream:
        await _echo(client, "no origin")


def test_allowed_origins_is_normalised_and_not_a_string() -> None:
    config = RoomsConfig(allowed_origins=("https://A.example/",))
    assert config.allowed_origins == frozenset({"https://a.example"})
    with pytest.raises(TypeError, match="not a str"):
        RoomsConfig(allowed_origins="https://a.example")


# ------------------------------------------------------------ connection caps


@pytest.mark.parametrize("config", [RoomsConfig(max_connections=2)])
async def test_the_global_connection_cap_answers_503(port: int, rooms: Rooms[GuardedRoom]) -> None:
    first, second = await _connect(port), await _connect(port)
    status, body = await _status(port, _path())
    assert status == 503
    assert b"limit of 2 connections" in body
    await first.send(client_frame(CLOSE, (1000).to_bytes(2, "big")))
    assert await first.close_code() == 1000
    await first.stream.aclose()
    await _connections(rooms, 1)
    third = await _connect(port)
    await _echo(third, "room again")
    await second.stream.aclose()
    await third.stream.aclose()


@pytest.mark.parametrize("config", [RoomsConfig(max_connections_per_address=2)])
async def test_the_per_address_cap_answers_503(port: int, rooms: Rooms[GuardedRoom]) -> None:
    first, second = await _connect(port), await _connect(port)
    status, body = await _status(port, _path())
    assert status == 503
    assert b"too many connections from 127.0.0.1" in body
    assert rooms.statistics().sessions == 2
    await first.stream.aclose()
    await second.stream.aclose()


@pytest.mark.embedded_only("hypercorn completes handshakes before the app sees them")
@pytest.mark.parametrize("config", [RoomsConfig(max_connections=2)])
async def test_connections_in_their_handshake_hold_a_slot(
    port: int, rooms: Rooms[GuardedRoom]
) -> None:
    """Two clients that never finish their handshake keep a third one out."""
    idle = [await connect_socket(port), await connect_socket(port)]
    await _connections(rooms, 2)
    assert (await _status(port, _path()))[0] == 503
    for stream in idle:
        await stream.aclose()


def test_the_caps_default_to_the_documented_values() -> None:
    config = RoomsConfig()
    assert (config.max_connections, config.max_connections_per_address) == (10_000, 100)
    assert config.max_sessions_per_room is None
    assert config.max_rooms == 10_000
    assert (config.rate_limit, config.rate_limit_burst, config.rate_limit_excess) == (50, 100, 100)
    assert config.max_invalid_in_a_row == 10
    assert config.allowed_origins is None
    with pytest.raises(ValueError, match="max_connections"):
        RoomsConfig(max_connections=0)
    with pytest.raises(ValueError, match="max_sessions_per_room"):
        RoomsConfig(max_sessions_per_room=0)
    with pytest.raises(ValueError, match="max_rooms"):
        RoomsConfig(max_rooms=0)
    with pytest.raises(ValueError, match="rate_limit"):
        RoomsConfig(rate_limit=-1.0)
    with pytest.raises(ValueError, match="max_invalid_in_a_row"):
        RoomsConfig(max_invalid_in_a_row=0)


@pytest.mark.parametrize("config", [RoomsConfig(max_sessions_per_room=2)])
async def test_a_full_room_answers_503(port: int, rooms: Rooms[GuardedRoom]) -> None:
    clients = [await _connect(port), await _connect(port)]
    status, body = await _status(port, _path())
    assert status == 503
    assert b"room 'lobby' is full" in body
    other = await _connect(port, _path("other"))  # other rooms are not affected
    await _echo(other, "elsewhere")
    for client in (*clients, other):
        await client.stream.aclose()


# ------------------------------------------------------------------ room cap


@pytest.mark.parametrize("config", [RoomsConfig(max_rooms=2, room_idle_timeout=0.05)])
async def test_a_new_room_past_max_rooms_answers_503(port: int, rooms: Rooms[GuardedRoom]) -> None:
    """Past the room cap a connection to a new room gets 503 before its upgrade, while the
    live rooms still admit, and a room evicted makes room for a new one."""
    first, second = await _connect(port, _path("one")), await _connect(port, _path("two"))
    status, body = await _status(port, _path("three"))
    assert status == 503
    assert b"limit of 2 rooms" in body
    assert rooms.statistics().rooms == 2
    again = await _connect(port, _path("one"))
    await _echo(again, "a live room")
    await second.stream.aclose()
    with trio.fail_after(5):  # "two" is evicted
        await rooms.wait_statistics(lambda stats: stats.rooms == 1)
    third = await _connect(port, _path("three"))
    await _echo(third, "room again")
    for client in (first, again, third):
        await client.stream.aclose()


class CountedRoom(GuardedRoom):
    """Counts the rooms alive at once, from before ``on_start`` to after ``on_stop``."""

    live = 0
    peak = 0

    async def on_start(self) -> None:
        CountedRoom.live += 1
        CountedRoom.peak = max(CountedRoom.peak, CountedRoom.live)
        await trio.lowlevel.checkpoint()  # other creations run while this one starts

    async def on_stop(self) -> None:
        CountedRoom.live -= 1


async def test_concurrent_connects_to_distinct_rooms_never_pass_max_rooms(
    nursery: trio.Nursery, transport: Transport
) -> None:
    """Sixty clients connecting at once to sixty rooms under a cap of five: five rooms
    start and admit, every other client gets 503 or (past the admission check) 1013."""
    cap, clients = 5, 60
    CountedRoom.live = CountedRoom.peak = 0
    outcomes: list[str] = []

    async def attempt(index: int) -> None:
        stream = await connect_socket(port)
        async with stream:
            await stream.send_all(handshake_request(_path(f"room-{index}")))
            status, _, rest = await read_http_response(stream)
            if status != 101:
                outcomes.append(str(status))
                return
            client = RawClient(stream, rest)
            await client.send_text(orjson.dumps({"type": "hello", "text": "hi"}).decode())
            while (frame := await client.receive_frame()) is not None:
                if frame.opcode == TEXT:
                    outcomes.append("admitted")
                    return
                if frame.opcode == CLOSE:
                    outcomes.append(f"close {frame.close_code}")
                    return
            outcomes.append("lost")

    config = RoomsConfig(max_rooms=cap, max_connections_per_address=clients)
    async with trio_rooms.open_rooms(CountedRoom, config=config) as rooms:
        port = await start_server(nursery, transport, rooms)
        with trio.fail_after(20):
            async with trio.open_nursery() as attempts:
                for index in range(clients):
                    attempts.start_soon(attempt, index)
        assert rooms.statistics().rooms == cap
        nursery.cancel_scope.cancel()
    assert outcomes.count("admitted") == cap
    assert set(outcomes) <= {"admitted", "503", "close 1013"}, outcomes
    assert CountedRoom.peak == cap


async def test_rooms_get_past_max_rooms_raises_too_many_rooms_error() -> None:
    """``Rooms.get`` refuses a new room past the cap with `TooManyRoomsError`, counting
    rooms still starting, and returns the live ones as before."""
    CountedRoom.live = CountedRoom.peak = 0
    async with trio_rooms.open_rooms(CountedRoom, config=RoomsConfig(max_rooms=3)) as rooms:
        started: list[str] = []
        refused: list[trio_rooms.TooManyRoomsError] = []

        async def get(name: str) -> None:
            try:
                started.append((await rooms.get(name)).name)
            except trio_rooms.TooManyRoomsError as exc:
                refused.append(exc)

        async with trio.open_nursery() as nursery:
            for index in range(10):
                nursery.start_soon(get, f"room-{index}")
        assert (len(refused), CountedRoom.peak, rooms.statistics().rooms) == (7, 3, 3)
        error = refused[0]
        assert isinstance(error, RuntimeError)
        assert error.limit == 3
        assert str(error) == "the server is at its limit of 3 rooms (RoomsConfig.max_rooms)"
        assert (await rooms.get(started[0])).name == started[0]


class SlowStopRoom(GuardedRoom):
    """Its ``on_stop`` waits for ``release``: a room that takes its time to stop."""

    stopping = trio.Event()
    release = trio.Event()

    async def on_stop(self) -> None:
        SlowStopRoom.stopping.set()
        await SlowStopRoom.release.wait()


async def test_a_room_asked_for_at_the_cap_waits_for_a_room_being_stopped() -> None:
    """At ``max_rooms``, a room still stopping counts, and a new room asked for then is
    made once it has stopped, not refused; with none stopping, it is refused at once."""
    SlowStopRoom.stopping, SlowStopRoom.release = trio.Event(), trio.Event()
    async with trio_rooms.open_rooms(SlowStopRoom, config=RoomsConfig(max_rooms=1)) as rooms:
        await rooms.get("old")
        with pytest.raises(trio_rooms.TooManyRoomsError):
            await rooms.get("refused")
        made: list[str] = []

        async def get_new() -> None:
            made.append((await rooms.get("new")).name)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(registry_of(rooms).evict, "old")
            await SlowStopRoom.stopping.wait()
            nursery.start_soon(get_new)
            await trio.testing.wait_all_tasks_blocked()
            assert made == []  # "old" still counts while its on_stop runs
            SlowStopRoom.release.set()
        assert made == ["new"]
        assert rooms.statistics().rooms == 1


# --------------------------------------------------------------- rate limit


@pytest.mark.parametrize(
    "config", [RoomsConfig(rate_limit=1, rate_limit_burst=3, rate_limit_excess=4)]
)
async def test_messages_over_the_rate_limit_get_errors_then_1008(
    port: int, rooms: Rooms[GuardedRoom]
) -> None:
    client = await _connect(port)
    async with client.stream:
        for n in range(10):
            await client.send_text(orjson.dumps({"type": "hello", "text": str(n)}).decode())
        echoes: list[str] = []
        errors: list[str] = []
        with trio.fail_after(5):
            while (frame := await client.receive_frame()) is not None and frame.opcode != CLOSE:
                if frame.opcode != TEXT:
                    continue  # hypercorn's pings
                reply = orjson.loads(frame.payload)
                (echoes if "type" in reply else errors).append(reply.get("text") or reply["error"])
        assert frame is not None
        assert frame.close_code == 1008
    assert echoes == ["0", "1", "2"]  # the burst
    assert errors == ["rate limit exceeded: at most 1 messages per second"] * 4
    assert rooms.statistics().rate_limited == 5  # the 5th over the limit closed it


def test_the_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.excess == 1
    assert bucket.take(0.05) is False  # half a token
    assert bucket.take(0.1) is True  # one token came back
    assert bucket.excess == 2  # the bucket has not been full since
    assert bucket.take(10.0) is True  # full again: the slate is clean
    assert bucket.excess == 0
    steady = TokenBucket(rate=10, burst=1, now=0.0)
    assert all(steady.take(n / 9) for n in range(100))  # under the rate: never refused


# ----------------------------------------------------------- invalid streaks


@pytest.mark.parametrize("config", [RoomsConfig(max_invalid_in_a_row=3)])
async def test_invalid_frames_in_a_row_close_with_1008(
    port: int, rooms: Rooms[GuardedRoom]
) -> None:
    client = await _connect(port)
    async with client.stream:
        for _ in range(2):
            await client.send_text("{not json")
            assert "error" in orjson.loads(await client.receive_text())
        await _echo(client, "valid: the streak starts again")
        await client.send(client_frame(BINARY, b"\x00"))  # binary on a JSON session
        assert "error" in orjson.loads(await client.receive_text())
        await client.send_text('{"type": "nope"}')
        assert "error" in orjson.loads(await client.receive_text())
        await client.send_text("[]")
        assert await client.close_code() == 1008
    assert rooms.statistics().invalid == 5
