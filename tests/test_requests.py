"""Typed request/response over real sockets, JSON and msgpack: replies, errors, timeouts."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, cast

import attrs
import msgpack
import orjson
import pytest
import trio

import trio_rooms
from trio_rooms import (
    ConnectRequest,
    Message,
    Request,
    RequestError,
    Rooms,
    RoomsConfig,
    Session,
    WireFormat,
    replies,
    testing,
)
from trio_rooms.client import Reconnected, ReconnectPolicy, RoomClient, open_room_client

from .redis_server import RedisServer
from .rpc_app import (
    Chat,
    ClientMsg,
    Fail,
    GetScore,
    Release,
    RpcRoom,
    RpcSession,
    Say,
    Score,
    ServerMsg,
    Slow,
    Unanswered,
)
from .servers import Transport, start_server
from .sockets import open_client

FORMATS: list[WireFormat] = ["json", "msgpack"]
#: Reconnects after a short pause: long enough to queue requests while disconnected.
SLOW_RECONNECT = ReconnectPolicy(initial_delay=0.2, max_delay=0.2, max_attempts=20)


@asynccontextmanager
async def _serve(
    config: RoomsConfig | None = None, transport: Transport = "embedded"
) -> AsyncGenerator[tuple[Rooms[Any], int]]:
    async with (
        trio_rooms.open_rooms(RpcRoom, config=config or RoomsConfig()) as rooms,
        trio.open_nursery() as nursery,
    ):
        port = await start_server(nursery, transport, rooms)
        yield rooms, port
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def _client(
    port: int, wire: WireFormat, policy: ReconnectPolicy = SLOW_RECONNECT
) -> AsyncGenerator[RoomClient[ServerMsg, ClientMsg]]:
    url = f"ws://127.0.0.1:{port}/rooms/r/websocket"
    async with open_room_client(url, RpcSession, format=wire, reconnect=policy) as client:
        yield client


def _reason(frame: dict[str, object]) -> str:
    failed = frame["$error"]
    assert isinstance(failed, dict)
    reason = cast("dict[str, object]", failed)["reason"]
    assert isinstance(reason, str)
    return reason


async def _room(rooms: Rooms[Any]) -> RpcRoom:
    room = await rooms.get("r")
    assert isinstance(room, RpcRoom)
    return room


@pytest.mark.parametrize("wire", FORMATS)
async def test_a_request_gets_its_typed_reply(wire: WireFormat, transport: Transport) -> None:
    """A request's reply comes back as its declared class, and plain messages still flow."""
    async with _serve(transport=transport) as (_, port), _client(port, wire) as client:
        with trio.fail_after(10):
            score = await client.request(GetScore("ann"), timeout=5)
            assert score == Score("ann", 3)
            client.send(Say("hi"))
            assert await client.receive() == Chat("hi")
            assert await client.request(GetScore("bob"), timeout=5) == Score("bob", 5)
            with pytest.raises(TypeError, match=re.escape("GetScore is a request: use request()")):
                client.send(GetScore("ann"))


@pytest.mark.parametrize("wire", FORMATS)
async def test_a_failing_handler_gives_the_caller_a_request_error(
    wire: WireFormat, transport: Transport
) -> None:
    """A refusal carries its reason, a bug answers "internal error", and the session stays open."""
    async with _serve(transport=transport) as (rooms, port), _client(port, wire) as client:
        with trio.fail_after(10):
            with pytest.raises(RequestError) as refused:
                await client.request(Fail(refuse=True), timeout=5)
            assert refused.value.reason == "refused on purpose"
            with pytest.raises(RequestError) as failed:
                await client.request(Fail(refuse=False), timeout=5)
            assert failed.value.reason == "internal error"
            with pytest.raises(RequestError, match="not a request this session answers"):
                await client.request(Unanswered(), timeout=5)
            assert await client.request(GetScore("ann"), timeout=5) == Score("ann", 3)
        room = await _room(rooms)
        assert [type(e) for e in room.errors] == [ZeroDivisionError]
        assert client.connected


@pytest.mark.parametrize("wire", FORMATS)
async def test_a_request_without_a_reply_times_out(wire: WireFormat) -> None:
    """``timeout`` raises TimeoutError on the caller; the late reply is dropped, not received."""
    async with _serve() as (rooms, port), _client(port, wire) as client:
        with trio.fail_after(10):
            with pytest.raises(TimeoutError, match="no reply to 'slow'"):
                await client.request(Slow("late"), timeout=0.2)
            (await _room(rooms)).waiting["late"].set()
            client.send(Say("after"))
            assert await client.receive() == Chat("after")
            assert await client.request(GetScore("ann"), timeout=5) == Score("ann", 3)


@pytest.mark.parametrize("wire", FORMATS)
async def test_concurrent_requests_are_answered_out_of_order(wire: WireFormat) -> None:
    """A slow handler that lets the gate go does not hold up the requests behind it."""
    async with _serve() as (rooms, port), _client(port, wire) as client:
        order: list[str] = []

        async def slow() -> None:
            assert await client.request(Slow("a"), timeout=5) == Score("a", 1)
            order.append("slow")

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow)
                room = await _room(rooms)
                await room.wait_waiting("a")
                assert await client.request(GetScore("bob"), timeout=5) == Score("bob", 5)
                order.append("fast")
                client.send(Release("a"))
        assert order == ["fast", "slow"]


@pytest.mark.parametrize("wire", FORMATS)
async def test_requests_made_while_reconnecting_are_answered_once(wire: WireFormat) -> None:
    """Requests queued while disconnected go out on the next connection and run once each."""
    async with _serve() as (rooms, port), _client(port, wire) as client:
        with trio.fail_after(10):
            client.send(Say("bye", code=1012))  # a retried close
            assert await client.receive() == Chat("bye")
            await client.wait_disconnected()
            assert not client.connected
            scores: list[Score] = []

            async def ask(player: str) -> None:
                scores.append(await client.request(GetScore(player), timeout=5))

            async with trio.open_nursery() as nursery:
                for player in ("ann", "bob", "ann"):
                    nursery.start_soon(ask, player)
            event = await client.events.receive()
            assert isinstance(event, Reconnected)
            assert event.resumed
        assert sorted(scores, key=lambda s: s.player) == [
            Score("ann", 3),
            Score("ann", 3),
            Score("bob", 5),
        ]
        room = await _room(rooms)
        assert room.calls == {"ann": 2, "bob": 1}


@pytest.mark.parametrize("wire", FORMATS)
async def test_a_request_in_flight_when_the_connection_drops_fails(wire: WireFormat) -> None:
    """A request written before a drop fails with RequestError, never waits or runs twice."""
    async with _serve() as (rooms, port), _client(port, wire) as client:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:

                async def slow() -> None:
                    with pytest.raises(RequestError, match="connection was lost"):
                        await client.request(Slow("cut"), timeout=5)

                nursery.start_soon(slow)
                room = await _room(rooms)
                await room.wait_waiting("cut")
                client.send(Say("bye", code=1012))
                assert await client.receive() == Chat("bye")
            room.waiting.pop("cut").set()  # its handler returns; the reply has nowhere to go
            event = await client.events.receive()
            assert isinstance(event, Reconnected)
            assert await client.request(GetScore("ann"), timeout=5) == Score("ann", 3)
        assert room.calls["cut"] == 1


@pytest.mark.parametrize("wire", FORMATS)
async def test_replies_are_not_replayed_on_resume(wire: WireFormat) -> None:
    """Replies are neither counted nor logged: a resume replays nothing and resyncs nothing."""
    async with _serve() as (_, port), _client(port, wire) as client:
        with trio.fail_after(10):
            for _ in range(3):
                assert await client.request(GetScore("ann"), timeout=5) == Score("ann", 3)
            client.send(Say("bye", code=1012))
            assert await client.receive() == Chat("bye")
            event = await client.events.receive()
            assert isinstance(event, Reconnected)
            assert (event.resumed, event.replayed) == (True, 0)
            client.send(Say("again"))
            assert await client.receive() == Chat("again")
            assert client.events.statistics().current_buffer_used == 0  # no Resynced


async def test_requests_past_the_in_flight_limit_are_refused() -> None:
    """One request more than ``max_requests_in_flight`` is answered with an error at once."""
    config = RoomsConfig(max_requests_in_flight=2)
    async with _serve(config) as (rooms, port), _client(port, "json") as client:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for key in ("a", "b"):
                    nursery.start_soon(functools.partial(client.request, Slow(key), timeout=5))
                room = await _room(rooms)
                await room.wait_waiting("a")
                await room.wait_waiting("b")
                with pytest.raises(RequestError, match="too many requests in flight: at most 2"):
                    await client.request(GetScore("ann"), timeout=5)
                client.send(Release("a"))
                client.send(Release("b"))
            assert await client.request(GetScore("ann"), timeout=5) == Score("ann", 3)


async def test_the_wire_carries_the_request_id_in_a_library_key() -> None:
    """``$rid`` rides on the request and its reply; bad ids and plain sends are refused."""
    async with _serve() as (_, port), open_client(port, "/rooms/r/websocket") as (ws, _):

        async def exchange(frame: dict[str, object], *, binary: bool = False) -> dict[str, object]:
            await ws.send_message(msgpack.packb(frame) if binary else orjson.dumps(frame).decode())
            with trio.fail_after(10):
                reply: dict[str, object] = orjson.loads(await ws.get_message())
            return reply

        assert await exchange({"type": "getScore", "player": "ann", "$rid": 7}) == {
            "type": "score",
            "player": "ann",
            "points": 3,
            "$rid": 7,
        }
        assert await exchange({"type": "getScore", "player": "ann", "$rid": -1}) == {
            "error": "expected '$rid' to be a request id"
        }
        assert await exchange({"type": "getScore", "player": "ann"}) == {
            "error": "'getScore' is a request: it needs a '$rid'"
        }
        # Unknown user keys are still refused, now in the request's error.
        bad = await exchange({"type": "getScore", "player": "ann", "x": 1, "$rid": 8})
        assert bad == {"$error": {"rid": 8, "reason": _reason(bad)}}
        assert _reason(bad) == "extra fields found (x) @ $"
        # A binary frame on a JSON session is on_bytes's, request or not.
        assert await exchange({"type": "getScore", "player": "ann", "$rid": 9}, binary=True) == {
            "error": "binary frames are not accepted by this session"
        }
        assert await exchange({"type": "say", "text": "$rid"}) == {
            "type": "chat",
            "text": "$rid",
        }


@pytest.mark.parametrize("wire", FORMATS)
async def test_the_test_client_makes_requests_too(wire: WireFormat) -> None:
    """``trio_rooms.testing.open_test_client`` is a RoomClient: its requests get typed replies."""
    async with (
        trio_rooms.open_rooms(RpcRoom) as rooms,
        testing.open_test_client(rooms, "r", format=wire) as client,
    ):
        with trio.fail_after(10):
            assert await client.request(GetScore("bob"), timeout=5) == Score("bob", 5)
            with pytest.raises(RequestError, match="refused on purpose"):
                await client.request(Fail(refuse=True), timeout=5)


def test_a_session_class_with_a_misplaced_handler_is_a_type_error() -> None:
    """Handlers of foreign requests, replies outside the server messages and twins are refused."""

    @attrs.frozen
    class Other(Request[Score]):
        pass

    @attrs.frozen
    class Stranger(Message):
        pass

    @attrs.frozen
    class Lost(Request[Stranger]):
        pass

    with pytest.raises(TypeError, match=r"Foreign\.other answers \S*Other, not a client message"):

        class Foreign(Session[None, Score, GetScore]):  # pyright: ignore[reportUnusedClass]
            async def create_data(self, request: ConnectRequest) -> None:
                return None

            @replies(Other)
            async def other(self, request: Other) -> Score:
                return Score("x", 0)

            async def on_message(self, message: GetScore) -> None:
                pass

    with pytest.raises(
        TypeError, match=r"the reply \S*Stranger of \S*Lost is not one of the server messages"
    ):

        class Unsendable(Session[None, Score, Lost]):  # pyright: ignore[reportUnusedClass]
            async def create_data(self, request: ConnectRequest) -> None:
                return None

            @replies(Lost)
            async def lost(self, request: Lost) -> Stranger:
                return Stranger()

            async def on_message(self, message: Lost) -> None:
                pass

    with pytest.raises(TypeError, match=r"Twice\.two and \S*Twice\.one both answer GetScore"):

        class Twice(Session[None, Score, GetScore]):  # pyright: ignore[reportUnusedClass]
            async def create_data(self, request: ConnectRequest) -> None:
                return None

            @replies(GetScore)
            async def one(self, request: GetScore) -> Score:
                return Score("x", 0)

            @replies(GetScore)
            async def two(self, request: GetScore) -> Score:
                return Score("x", 0)

            async def on_message(self, message: GetScore) -> None:
                pass

    with pytest.raises(TypeError, match=re.escape("a reply must be a trio_rooms.Message class")):

        class NotAMessage(Request[int]):  # pyright: ignore[reportUnusedClass]
            pass


@pytest.mark.slow
@pytest.mark.parametrize("wire", FORMATS)
async def test_a_request_relayed_through_a_node_that_does_not_own_the_room_is_answered(
    wire: WireFormat, redis_server: RedisServer
) -> None:
    """With one owner per room, a client of the other node gets typed replies and errors."""
    from trio_rooms.backplane.redis import RedisCluster
    from trio_rooms.storage.redis import RedisStorage

    async def node(name: str, task_status: trio.TaskStatus[tuple[Rooms[Any], int]]) -> None:
        cluster = RedisCluster(redis_server.url, node_id=name, lease_ttl=1.5, timeout=0.3)
        async with (
            trio_rooms.open_rooms(
                RpcRoom, storage=RedisStorage(redis_server.url), cluster=cluster
            ) as rooms,
            trio.open_nursery() as nursery,
        ):
            port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
            task_status.started((rooms, port))
            await trio.sleep_forever()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            owner, _ = await nursery.start(node, "a")
            _, port = await nursery.start(node, "b")
            await _room(owner)  # node a owns the room: node b relays its clients there
            async with _client(port, wire) as client:
                assert await client.request(GetScore("ann"), timeout=5) == Score("ann", 3)
                with pytest.raises(RequestError, match="refused on purpose"):
                    await client.request(Fail(refuse=True), timeout=5)
            nursery.cancel_scope.cancel()
