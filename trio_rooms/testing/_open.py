"""``open_test_client``: the real `RoomClient`, joined to a room over memory streams."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar, cast, overload

import trio
import trio.testing

from .._core.room import Room
from .._core.rooms import Rooms
from .._core.session import Session, SessionRoom
from .._message import Message
from ..client import ReconnectPolicy, RoomClient, open_room_client
from ..codec import WireFormat
from ..transports.websocket import serve_stream

__all__ = ["open_test_client"]

DataT = TypeVar("DataT")
ServerMsgT = TypeVar("ServerMsgT", bound=Message)
ClientMsgT = TypeVar("ClientMsgT", bound=Message)
#: The session's room type: its own room class, or the default `SessionRoom`.
RoomT = TypeVar("RoomT", bound=SessionRoom[Any, Any])
#: The room's presence metadata class (``presence=``).
MetaT = TypeVar("MetaT")

#: Tests want a reconnect at once, and a bounded number of them.
_TEST_RECONNECT = ReconnectPolicy(initial_delay=0.001, max_delay=0.001, jitter=0.0, max_attempts=10)


@overload
def open_test_client(
    rooms: Rooms[Room[Session[DataT, ServerMsgT, ClientMsgT, RoomT]]],
    room: str,
    *,
    format: WireFormat = ...,
    query: str = ...,
    resume: bool = ...,
    reconnect: ReconnectPolicy = ...,
) -> AbstractAsyncContextManager[RoomClient[ServerMsgT, ClientMsgT]]: ...


@overload
def open_test_client(
    rooms: Rooms[Room[Session[DataT, ServerMsgT, ClientMsgT, RoomT]]],
    room: str,
    *,
    format: WireFormat = ...,
    query: str = ...,
    resume: bool = ...,
    reconnect: ReconnectPolicy = ...,
    presence: type[MetaT],
) -> AbstractAsyncContextManager[RoomClient[ServerMsgT, ClientMsgT, MetaT]]: ...


@asynccontextmanager
async def open_test_client(
    rooms: Rooms[Room[Session[DataT, ServerMsgT, ClientMsgT, RoomT]]],
    room: str,
    *,
    format: WireFormat = "json",
    query: str = "",
    resume: bool = True,
    reconnect: ReconnectPolicy = _TEST_RECONNECT,
    presence: type[MetaT] | None = None,
) -> AsyncGenerator[RoomClient[ServerMsgT, ClientMsgT, MetaT]]:
    """Join ``room`` with the production client, over memory streams instead of TCP.

    ::

        async with trio_rooms.open_rooms(ChatRoom) as rooms:
            async with testing.open_test_client(rooms, "lobby", query="name=ann") as ann:
                ann.send(SendChat(text="hi"))  # typed: the session's client messages
                assert (await ann.receive()).text == "hi"  # typed: its server messages

    It is `trio_rooms.open_room_client`, typed by the room's session, each of its
    connections served by the embedded transport on a `trio.testing.memory_stream_pair`:
    what a test sees is what a deployed client sees, resume included (``resume`` asks for
    a resumable session, as in production, and a reconnect after a close with 1001, 1012
    or 1013 resumes it). Leaving the block closes with 1000 and waits for the session to
    end on the server.

    Args:
        rooms: The running rooms.
        room: The room's name (it is created if it is not live).
        format: The wire format to ask for.
        query: More query parameters, as ``"a=1&b=2"``.
        resume: Ask for a resumable session (the ``$session`` frame) and resume it.
        reconnect: When to reconnect; by default at once, up to 10 times.
        presence: The room's presence metadata class, as for `open_room_client`:
            ``client.presence`` and `PresenceChanged` events.
    """
    live = await rooms.get(room)
    session_class = type(live).session_class
    assert session_class is not None  # a Room subclass always has one (checked at creation)
    url = f"ws://testserver{rooms.config.prefix}/{room}/websocket" + (f"?{query}" if query else "")
    async with trio.open_nursery() as server:

        async def open_stream() -> trio.abc.Stream:
            client_stream, server_stream = trio.testing.memory_stream_pair()
            server.start_soon(serve_stream, rooms, server_stream)
            return client_stream

        async with open_room_client(
            url,
            session_class,
            format=format,
            resume=resume,
            reconnect=reconnect,
            # The client takes what the server sends; the server enforces its own limits.
            max_message_size=2**31,
            camel_case=rooms.config.camel_case,
            open_stream=open_stream,
            # Without presence the client holds none: typed by the overloads above.
            presence=cast("type[MetaT]", presence),
        ) as client:
            yield cast("RoomClient[ServerMsgT, ClientMsgT, MetaT]", client)
