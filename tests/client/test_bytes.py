"""Bytes fields end to end over real sockets: a bin in msgpack, base64 in JSON, the same bytes."""

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
class Put(Message):
    key: str
    blob: bytes
    parts: list[bytes] = attrs.field(factory=list[bytes])


@attrs.frozen
class Stored(Message):
    key: str
    blob: bytes
    parts: list[bytes]
    size: int
    thumb: bytes | None = None


class BlobSession(Session[None, Stored, Put]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Put) -> None:
        self.send(
            Stored(
                key=message.key,
                blob=message.blob[::-1],
                parts=message.parts,
                size=len(message.blob),
                thumb=message.blob[:1] or None,
            )
        )


class BlobRoom(Room[BlobSession]):
    pass


@pytest.mark.parametrize("format", ["json", "msgpack"])
async def test_the_typed_client_round_trips_bytes(
    nursery: trio.Nursery, transport: Transport, format: WireFormat
) -> None:
    """open_room_client sends and receives bytes fields, empty and binary ones included."""
    async with trio_rooms.open_rooms(BlobRoom) as rooms:
        port = await start_server(nursery, transport, rooms)
        url = f"ws://127.0.0.1:{port}/rooms/r/websocket"
        async with open_room_client(url, BlobSession, format=format) as client:
            client.send(Put(key="k", blob=b"\x00\xff\n", parts=[b"", b"\x80"]))
            assert await client.receive() == Stored(
                key="k", blob=b"\n\xff\x00", parts=[b"", b"\x80"], size=3, thumb=b"\x00"
            )
        nursery.cancel_scope.cancel()


async def test_a_raw_json_client_sees_base64_and_a_raw_msgpack_client_a_bin(
    nursery: trio.Nursery, transport: Transport
) -> None:
    """What a browser reads: padded base64 text in JSON frames, bin values in msgpack frames."""
    async with trio_rooms.open_rooms(BlobRoom) as rooms:
        port = await start_server(nursery, transport, rooms)
        async with open_client(port, "/rooms/r/websocket") as (ws, _):
            await ws.send_message(
                orjson.dumps({"type": "put", "key": "j", "blob": "AP8="}).decode()
            )
            text = await ws.get_message()
            await ws.send_message(
                orjson.dumps({"type": "put", "key": "bad", "blob": "AP8"}).decode()
            )
            error = await ws.get_message()
        async with open_client(port, "/rooms/r/websocket?format=msgpack") as (ws, _):
            frame = msgpack.packb({"type": "put", "key": "m", "blob": b"\x00\xff"})
            await ws.send_message(frame)
            binary = await ws.get_message()
        nursery.cancel_scope.cancel()
    assert isinstance(text, str)
    assert orjson.loads(text) == {
        "type": "stored",
        "key": "j",
        "blob": "/wA=",
        "parts": [],
        "size": 2,
        "thumb": "AA==",
    }
    assert isinstance(error, str)
    assert "expected a base64 string @ $.blob" in orjson.loads(error)["error"]
    assert isinstance(binary, bytes)
    assert msgpack.unpackb(binary) == {
        "type": "stored",
        "key": "m",
        "blob": b"\xff\x00",
        "parts": [],
        "size": 2,
        "thumb": b"\x00",
    }
