"""The opening handshake of an embedded connection: its request read, a room's HTTP
route answered, or an upgrade completed (or refused) and then forgotten."""

from __future__ import annotations

import logging
from typing import Any, final

import trio

from .._core.config import RoomsConfig
from .._core.http_serving import HttpHead, serve_http
from .._core.rooms import Rooms
from ._framing import http_response, response_bytes
from ._handshake import HandshakeParser, NeedData, PlainRequest, Refusal, Upgrade
from ._keepalive import Keepalive
from ._stream_connection import StreamConnection
from ._stream_io import (
    RECEIVE_SIZE,
    describe,
    read_now,
    read_some,
    send_and_linger,
    send_small,
)
from ._throttle import ThrottledLog

__all__ = ["PendingUpgrade", "read_opening"]

# A bad handshake is logged without a traceback, and a flood of them in one line per
# interval.
_refused = ThrottledLog(logging.getLogger("trio_rooms"), logging.INFO, 10.0)


async def read_opening(
    rooms: Rooms[Any], stream: trio.abc.Stream, peer: tuple[str, int] | None
) -> Upgrade | None:
    """Read the request: an upgrade to serve, or None once it was answered otherwise."""
    parser = HandshakeParser()
    request = await _read_request(stream, parser, rooms.config, peer)
    if isinstance(request, PlainRequest):
        await _serve_route(rooms, stream, parser, request, peer)
        return None
    return request


@final
class PendingUpgrade:
    """Completes (or refuses) one admitted upgrade, and then forgets the handshake."""

    __slots__ = ("_config", "_keepalive", "_received", "_response", "_stream", "connection")

    def __init__(
        self,
        stream: trio.abc.Stream,
        config: RoomsConfig,
        keepalive: Keepalive | None,
        request: Upgrade,
    ) -> None:
        self._stream = stream
        self._config = config
        self._keepalive = keepalive
        self._response = request.response
        self._received = request.trailing
        self.connection: StreamConnection | None = None

    async def accept(self) -> StreamConnection:
        await send_small(self._stream, self._response)
        connection = StreamConnection(self._stream, self._config, received=self._received)
        self._response = self._received = b""
        self.connection = connection
        if self._keepalive is not None:
            self._keepalive.add(connection)
            connection.parking = self._keepalive.parking
            connection.watching = self._keepalive.watching
        return connection

    async def refuse(self, status: int, body: str) -> None:
        await send_and_linger(self._stream, http_response(status, body))

    def ended(self) -> None:
        if self._keepalive is not None and self.connection is not None:
            self._keepalive.discard(self.connection)


async def _read_request(
    stream: trio.abc.Stream,
    parser: HandshakeParser,
    config: RoomsConfig,
    peer: tuple[str, int] | None,
) -> Upgrade | PlainRequest | None:
    """Read a request head; None if the client left, timed out or was refused."""
    outcome: Upgrade | PlainRequest | Refusal | None = None
    # The request is usually there by the accept: read without a deadline first (and
    # yield as trio's read does, so that tasks run in the order they did with it).
    data = read_now(stream)
    if data is not None:
        await trio.lowlevel.cancel_shielded_checkpoint()
        if not data:
            return None
        outcome = parser.receive_data(data)
    if outcome is None:
        with trio.move_on_after(config.handshake_timeout):
            while outcome is None:
                data = await read_some(stream)
                if not data:
                    return None
                outcome = parser.receive_data(data)
    if not isinstance(outcome, Refusal):
        return outcome
    _refused.log("refused a handshake from %s: %d %s", describe(peer), outcome.status, outcome.body)
    await send_and_linger(stream, http_response(outcome.status, outcome.body, outcome.headers))
    return None


async def _serve_route(
    rooms: Rooms[Any],
    stream: trio.abc.Stream,
    parser: HandshakeParser,
    request: PlainRequest,
    peer: tuple[str, int] | None,
) -> None:
    """Answer a request for a room's HTTP routes, then close (no keep-alive)."""
    expects_continue = request.expects_continue

    async def receive_body() -> tuple[bytes, bool] | None:
        nonlocal expects_continue
        piece = parser.next_body()
        while isinstance(piece, NeedData):
            if expects_continue:  # RFC 9110 10.1.1: say we will read it
                expects_continue = False
                await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                return None
            piece = parser.next_body(data)
        return piece

    head = HttpHead(
        method=request.method, target=request.target, headers=request.headers, client=peer
    )
    response = await serve_http(rooms, head, receive_body)
    if response is not None:
        answer = response_bytes(response.status, response.headers, response.body)
        await send_and_linger(stream, answer, within=rooms.config.request_timeout)
