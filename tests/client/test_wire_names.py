"""Fields with their own wire names, end to end: server and client, both formats, real sockets."""

from __future__ import annotations

import attrs
import msgpack
import orjson
import pytest
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session
from trio_rooms.client import open_room_client
from trio_rooms.codec import WireFormat

from ..servers import Transport, start_server
from ..sockets import open_client


@attrs.frozen
class Post(Message):
    message: str
    from_: str = attrs.field(metadata=trio_rooms.wire("from"))


@attrs.frozen
class Chat(Message):
    """The seed's ``{ type: 'chat'; message: string; from: string }``."""

    message: str
    from_: str = attrs.field(metadata=trio_rooms.wire("from"))
    reply_to: str | None = attrs.field(default=None, metadata=trio_rooms.wire("re"))


class PostSession(Session[None, Chat, Post]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Post) -> None:
        self.broadcast(Chat(message=message.message, from_=message.from_, reply_to="x"))


class PostRoom(Room[PostSession]):
    pass


def _dumps(format: WireFormat, obj: dict[str, str]) -> str | bytes:
    return orjson.dumps(obj).decode() if format == "json" else msgpack.packb(obj)


def _loads(format: WireFormat, frame: str | bytes) -> object:
    if isinstance(frame, str):
        return orjson.loads(frame)
    return orjson.loads(frame) if format == "json" else msgpack.unpackb(frame)


@pytest.mark.parametrize("format", ["json", "msgpack"])
async def test_a_raw_client_speaks_the_chosen_names(
    nursery: trio.Nursery, transport: Transport, format: WireFormat
) -> None:
    """The server reads ``from`` and writes ``from`` and ``re``, as a browser would see them."""
    async with trio_rooms.open_rooms(PostRoom) as rooms:
        port = await start_server(nursery, transport, rooms)
        async with open_client(port, f"/rooms/r/websocket?format={format}") as (ws, _):
            await ws.send_message(_dumps(format, {"type": "post", "message": "hi", "from": "ann"}))
            reply = _loads(format, await ws.get_message())
        nursery.cancel_scope.cancel()
    assert reply == {"type": "chat", "message": "hi", "from": "ann", "re": "x"}


@pytest.mark.parametrize("format", ["json", "msgpack"])
async def test_the_typed_client_round_trips_the_chosen_names(
    nursery: trio.Nursery, transport: Transport, format: WireFormat
) -> None:
    """open_room_client encodes and decodes renamed fields like the server does."""
    async with trio_rooms.open_rooms(PostRoom) as rooms:
        port = await start_server(nursery, transport, rooms)
        url = f"ws://127.0.0.1:{port}/rooms/r/websocket"
        async with open_room_client(url, PostSession, format=format) as client:
            client.send(Post(message="hi", from_="ann"))
            assert await client.receive() == Chat(message="hi", from_="ann", reply_to="x")
        nursery.cancel_scope.cancel()
