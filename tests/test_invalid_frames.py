"""``Session.on_invalid`` gets the raw frame and a reason pointing at the field, over a socket."""

from __future__ import annotations

import attrs
import pytest
import trio

import trio_rooms
from trio_rooms import ConnectRequest, DecodeError, Message, Room, Session
from trio_rooms.codec import WireFormat, make_codec

from .sockets import open_client


@attrs.frozen
class Hello(Message):
    name: str = attrs.field(validator=attrs.validators.max_len(5))


@attrs.frozen
class Seen(Message):
    reason: str
    text: str | None = None
    data: list[int] | None = None


class FrameSession(Session[None, Seen, Hello]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Hello) -> None:
        pass

    async def on_bytes(self, data: bytes) -> None:
        await super().on_bytes(data)  # the default: invalid input

    async def on_invalid(self, error: DecodeError) -> None:
        frame = error.frame
        assert frame is not None
        if isinstance(frame, str):
            self.send(Seen(reason=str(error), text=frame))
        else:
            self.send(Seen(reason=str(error), data=list(frame)))


class FrameRoom(Room[FrameSession]):
    pass


TOO_LONG = '{"type":"hello","name":"Bartholomew"}'


@pytest.mark.parametrize(
    ("format", "frame", "reason"),
    [
        (
            "json",
            TOO_LONG,
            "invalid value (ValueError: Length of 'name' must be <= 5: 11) @ $.name",
        ),
        ("json", "{not json", "invalid JSON: "),
        ("json", b"\x01\x02", "binary frames are not accepted by this session"),
        ("msgpack", b"\xc1", "invalid msgpack: "),
        ("msgpack", TOO_LONG, "expected a binary (msgpack) frame, got a text frame"),
        (
            "msgpack",
            b"\x82\xa4type\xa5hello\xa4name\xabBartholomew",
            "invalid value (ValueError: Length of 'name' must be <= 5: 11) @ $.name",
        ),
    ],
)
async def test_on_invalid_gets_the_frame_as_it_arrived(
    nursery: trio.Nursery, format: WireFormat, frame: str | bytes, reason: str
) -> None:
    """Text or binary, on either wire format, the DecodeError holds the frame and the reason."""
    async with trio_rooms.open_rooms(FrameRoom) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        codec = make_codec(format, Seen)
        async with open_client(port, f"/rooms/r/websocket?format={format}") as (ws, _):
            await ws.send_message(frame)
            seen = codec.decode(await ws.get_message())
        nursery.cancel_scope.cancel()
    if isinstance(frame, str):
        assert seen == Seen(reason=seen.reason, text=frame)
    else:
        assert seen == Seen(reason=seen.reason, data=list(frame))
    if reason.endswith(": "):  # then the parser's own words follow
        assert seen.reason.startswith(reason)
    else:
        assert seen.reason == reason
