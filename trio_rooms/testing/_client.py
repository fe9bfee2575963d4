"""``connect``: a typed WebSocket client joined to a room over memory streams."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Generic, TypeVar, cast, final

import trio
import trio.testing
import trio_websocket

from .._core.room import Room
from .._core.rooms import Rooms
from .._core.session import Session, SessionRoom
from .._errors import ConnectionClosedError
from .._message import Message
from .._wire import ErrorFrame, parse_library_frame
from ..codec import Codec, WireFormat, make_codec
from ..transports.websocket import serve_stream

__all__ = ["TestClient", "connect"]

DataT = TypeVar("DataT")
ServerMsgT = TypeVar("ServerMsgT", bound=Message)
ClientMsgT = TypeVar("ClientMsgT", bound=Message)
#: The session's room type: its own room class, or the default `SessionRoom`.
RoomT = TypeVar("RoomT", bound=SessionRoom[Any, Any])


@final
class TestClient(Generic[ServerMsgT, ClientMsgT]):
    """One client of a room, typed by the room's session: sends client messages,
    receives server messages. Made by `connect`."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        encoder: Codec[ClientMsgT],
        decoder: Codec[ServerMsgT],
        outbox: trio.MemorySendChannel[str | bytes],
    ) -> None:
        self._ws = ws
        self._encoder = encoder
        self._decoder = decoder
        self._outbox = outbox
        self._text = encoder.format == "json"

    def send(self, message: ClientMsgT) -> None:
        """Queue ``message`` for the server; frames are written in the order queued."""
        payload = self._encoder.encode(message)
        self.send_frame(payload.decode() if self._text else payload)

    def send_frame(self, data: str | bytes) -> None:
        """Queue a raw frame: text for `str`, binary for `bytes` (for invalid input)."""
        self._outbox.send_nowait(data)

    async def receive(self) -> ServerMsgT:
        """Wait for the next server message.

        Raises:
            DecodeError: the frame is not one of the session's server messages (for
                example a library ``{"error": ...}`` frame).
            ConnectionClosedError: the connection was closed; ``code`` says how.
        """
        return self._decoder.decode(await self.receive_frame())

    async def receive_frame(self) -> str | bytes:
        """Wait for the next frame, undecoded.

        Raises:
            ConnectionClosedError: the connection was closed; ``code`` says how.
        """
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            reason = exc.reason
            if reason is None:
                raise ConnectionClosedError(1006) from exc
            raise ConnectionClosedError(reason.code, reason.reason or "") from exc

    async def receive_error(self) -> str:
        """Wait for the next frame and return the text of its library ``{"error": text}``.

        Raises:
            TypeError: the frame is not an error frame (a message, say).
            DecodeError: the frame is a library frame of the wrong shape.
            ConnectionClosedError: the connection was closed; ``code`` says how.
        """
        frame = await self.receive_frame()
        parsed = parse_library_frame(frame)
        if not isinstance(parsed, ErrorFrame):
            raise TypeError(f"expected an error frame, got {frame!r}")
        return parsed.text

    @property
    def close_code(self) -> int | None:
        """The close code once the connection has closed, else None."""
        reason = self._ws.closed
        return reason.code if reason is not None else None

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` after the queued frames are written."""
        await self._ws.aclose(code, reason)


async def _write(
    ws: trio_websocket.WebSocketConnection, outbox: trio.MemoryReceiveChannel[str | bytes]
) -> None:
    async for frame in outbox:
        try:
            await ws.send_message(frame)
        except trio_websocket.ConnectionClosed:
            return


@asynccontextmanager
async def connect(
    rooms: Rooms[Room[Session[DataT, ServerMsgT, ClientMsgT, RoomT]]],
    room: str,
    *,
    format: WireFormat = "json",
    query: str = "",
) -> AsyncGenerator[TestClient[ServerMsgT, ClientMsgT]]:
    """Connect a client to ``room`` through the embedded transport over memory streams.

    The client is typed with the room's session messages: `TestClient.send` takes
    its client messages, `TestClient.receive` returns its server messages. Leaving
    the block closes the connection (1000) and waits for the session to end.

    Args:
        rooms: The running rooms.
        room: The room's name.
        format: The wire format to ask for.
        query: More query parameters, as ``"a=1&b=2"``.
    """
    live = await rooms.get(room)
    session_class = type(live).session_class
    # Room subclasses can only exist with a concrete session class (checked at class creation).
    assert session_class is not None
    client_classes, server_classes = session_class.message_classes()
    camel_case = rooms.config.camel_case
    encoder = cast("Codec[ClientMsgT]", make_codec(format, *client_classes, camel_case=camel_case))
    decoder = cast("Codec[ServerMsgT]", make_codec(format, *server_classes, camel_case=camel_case))
    config = rooms.config
    client_stream, server_stream = trio.testing.memory_stream_pair()
    resource = f"{config.prefix}/{room}/websocket?format={format}" + (f"&{query}" if query else "")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_stream, rooms, server_stream)
        # The client accepts whatever the server sends; the server enforces its limits.
        # trio-websocket annotates SocketStream but only uses the Stream interface.
        stream = cast("trio.SocketStream", client_stream)
        ws = await trio_websocket.wrap_client_stream(
            nursery, stream, "testserver", resource, max_message_size=2**31
        )
        outbox, pending = trio.open_memory_channel[str | bytes](math.inf)
        nursery.start_soon(_write, ws, pending)
        client = TestClient(ws, encoder, decoder, outbox)
        try:
            yield client
        finally:
            outbox.close()
            with trio.CancelScope(shield=True):
                await ws.aclose()
