"""The ASGI adapter's reading: hypercorn's event queue, its size check, and a stopped server.

Most tests drive the app in-process, as an ASGI server calls it: with hypercorn's trio
worker the call's ``receive`` is a memory channel's own ``receive`` (the adapter reads
that channel itself); any other server may hand it a plain coroutine function.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Literal, cast

import pytest
import trio
from hypercorn.typing import (
    ASGIReceiveEvent,
    ASGISendEvent,
    ConnectionState,
    WebsocketReceiveEvent,
    WebsocketScope,
)

import trio_rooms
from trio_rooms import RoomsConfig

from .chat_app import ChatRoom, UserJoined
from .peer import connect
from .servers import start_server

#: How an ASGI server hands a call its ``receive``.
ReceiveStyle = Literal["channel", "function"]
RECEIVE_STYLES: tuple[ReceiveStyle, ...] = ("channel", "function")


def _scope() -> WebsocketScope:
    return {
        "type": "websocket",
        "asgi": {"spec_version": "2.3", "version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": "/rooms/lobby/websocket",
        "raw_path": b"/rooms/lobby/websocket",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        "state": ConnectionState({}),
    }


class AsgiCall:
    """One websocket call of the app: the events it is given, what it sends back."""

    def __init__(self, events: trio.MemorySendChannel[ASGIReceiveEvent]) -> None:
        self.events = events
        self.sent_send, self.sent = trio.open_memory_channel[ASGISendEvent](100)
        #: Cancels the call, as an ASGI server that stops does.
        self.scope = trio.CancelScope()
        self.returned = trio.Event()

    async def send(self, message: ASGISendEvent) -> None:
        await trio.lowlevel.checkpoint()  # a server's write yields, as hypercorn's does
        self.sent_send.send_nowait(message)

    async def text(self, text: str) -> None:
        event: WebsocketReceiveEvent = {"type": "websocket.receive", "bytes": None, "text": text}
        await self.events.send(event)

    async def next_sent(self) -> ASGISendEvent:
        return await self.sent.receive()


@contextlib.asynccontextmanager
async def asgi_call(
    config: RoomsConfig, style: ReceiveStyle
) -> AsyncGenerator[tuple[AsgiCall, trio_rooms.Rooms[ChatRoom]]]:
    """Open rooms, make one accepted websocket call of their app, and yield it."""
    events, receive_channel = trio.open_memory_channel[ASGIReceiveEvent](10)

    async def receive_function() -> ASGIReceiveEvent:
        return await receive_channel.receive()

    receive: Callable[[], Awaitable[ASGIReceiveEvent]] = (
        receive_channel.receive if style == "channel" else receive_function
    )
    call = AsgiCall(events)
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms, trio.open_nursery() as n:
        app = trio_rooms.bind_asgi(rooms)

        async def run() -> None:
            with call.scope:
                await app(_scope(), receive, call.send)
            call.returned.set()

        n.start_soon(run)
        await events.send({"type": "websocket.connect"})
        assert (await call.next_sent())["type"] == "websocket.accept"
        assert "userJoined" in _text(await call.next_sent())
        yield call, rooms
        call.scope.cancel()


def _text(message: ASGISendEvent) -> str:
    assert message["type"] == "websocket.send", message
    return cast("str", message.get("text"))


def _whisper(text: str) -> str:
    return f'{{"type":"whisper","text":"{text}"}}'


@pytest.mark.parametrize("style", RECEIVE_STYLES)
async def test_a_stopped_asgi_server_ends_its_sessions_without_waiting_for_close_timeout(
    style: ReceiveStyle,
) -> None:
    """A cancelled ASGI call sends 1001 and ends at once: no client answer can arrive."""
    config = RoomsConfig(close_timeout=60)
    with trio.fail_after(10):
        async with asgi_call(config, style) as (call, rooms):
            call.scope.cancel()
            await call.returned.wait()
            close = await call.next_sent()
            assert close["type"] == "websocket.close"
            assert close.get("code") == 1001
            assert (await rooms.get("lobby")).closed == [("anon", 1001)]


@pytest.mark.parametrize("style", RECEIVE_STYLES)
async def test_events_already_queued_are_handled_in_order(style: ReceiveStyle) -> None:
    """Messages hypercorn queued before the session read them are handled in order."""
    with trio.fail_after(10):
        async with asgi_call(RoomsConfig(), style) as (call, _):
            for index in range(8):  # queued without the app getting to run in between
                call.events.send_nowait(
                    {"type": "websocket.receive", "bytes": None, "text": _whisper(str(index))}
                )
            texts = [_text(await call.next_sent()) for _ in range(8)]
            assert [f'"text":"{index}"' in text for index, text in enumerate(texts)] == [True] * 8


@pytest.mark.parametrize("style", RECEIVE_STYLES)
@pytest.mark.parametrize(
    ("text", "handled"),
    [
        ("a" * 100, True),  # 28 + 100 = 128 bytes: at the limit
        ("a" * 101, False),
        ("\N{GRINNING FACE}" * 25, True),  # 53 characters, 128 bytes in UTF-8
        ("\N{GRINNING FACE}" * 25 + "a", False),  # 54 characters, 129 bytes
        ("\N{LATIN SMALL LETTER E WITH ACUTE}" * 4, True),  # short: within any encoding
    ],
)
async def test_a_text_message_is_measured_in_utf8_bytes(
    style: ReceiveStyle, text: str, handled: bool
) -> None:
    """A text message over max_message_size in UTF-8 bytes closes with 1009, not before."""
    config = RoomsConfig(max_message_size=128)
    with trio.fail_after(10):
        async with asgi_call(config, style) as (call, _):
            await call.text(_whisper(text))
            reply = await call.next_sent()
            if handled:
                assert text in _text(reply)
            else:
                assert reply["type"] == "websocket.close"
                assert reply.get("code") == 1009


async def test_stopping_hypercorn_ends_its_sessions_without_waiting_for_close_timeout() -> None:
    """Cancelling hypercorn ends each session at once with 1001 while its client stays."""
    config = RoomsConfig(close_timeout=60)
    server_scope = trio.CancelScope()
    server_stopped = trio.Event()

    async def serve(
        rooms: trio_rooms.Rooms[ChatRoom], *, task_status: trio.TaskStatus[int]
    ) -> None:
        with server_scope:
            async with trio.open_nursery() as server:
                task_status.started(await start_server(server, "hypercorn", rooms))
        server_stopped.set()

    async with (
        trio_rooms.open_rooms(ChatRoom, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(serve, rooms)
        async with connect(port, "lobby") as client:  # it outlives the server
            await client.receive_until(UserJoined)
            with trio.fail_after(10):
                server_scope.cancel()
                await server_stopped.wait()  # hypercorn returns once its calls have
                assert (await rooms.get("lobby")).closed == [("anon", 1001)]
                assert await client.close_code() == 1001
