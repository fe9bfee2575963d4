"""The ASGI transport: rooms and their HTTP routes behind hypercorn's trio worker.

Two ways to get an app:

- `bind_asgi` serves a `Rooms` you already own, for ``hypercorn.trio.serve`` in your
  own nursery next to `open_rooms`;
- `asgi_app` owns its `Rooms` through the ASGI lifespan, for the hypercorn CLI
  (``hypercorn --worker-class trio module:app``).

The URLs, validation and close codes are the embedded server's (`route_websocket`).
Hypercorn does the WebSocket protocol itself: it answers pings, enforces its own
``websocket_max_message_size`` (set it from `RoomsConfig.max_message_size`, see
`hypercorn_config`) and completes the close handshake. What ASGI cannot carry:

- the close code a client sent: hypercorn reports every client-initiated close as
  1006 (hypercorn issue #127), so ``on_close`` sees 1006 where the embedded server
  reports the client's code; a close the server starts is reported with its code;
- a message over hypercorn's limit is closed by hypercorn with 1009 and reaches the
  session as 1006;
- writes: hypercorn shields its socket writes, so a session closed as a slow
  consumer ends only when its client reads or the connection drops;
- handshakes: the connection caps count a connection from its ``websocket.connect``
  event; a client that never completes its handshake is hypercorn's to time out.
"""

# The transport and the core it serves are one package; the transport uses the
# core's protected entry points.
# pyright: reportPrivateUsage=false

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias, final
from urllib.parse import quote

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    HTTPScope,
    Scope,
    WebsocketScope,
)

from .._core.admission import room_class_of
from .._core.config import RoomsConfig, validate_room_name
from .._core.connection import ConnectionEnded
from .._core.outbound import BINARY, TEXT, Frame, OutboundQueue
from .._core.request import ConnectRequest
from .._core.room import Room
from .._core.rooms import Rooms, open_rooms
from .._core.routes import HttpRequest, Response, call_route, match_route, route_table
from .._core.routing import HttpRejection, route_websocket
from .._core.storage import Storage
from .._errors import RoomNameError, RoomsClosedError, TooManyRoomsError
from ..codec._record import JsonRecords

__all__ = ["ASGIApp", "asgi_app", "bind_asgi", "hypercorn_config"]

_logger = logging.getLogger("trio_rooms")

#: An ASGI 3 application, as hypercorn types it.
ASGIApp: TypeAlias = ASGIFramework


def bind_asgi(rooms: Rooms[Any]) -> ASGIApp:
    """An ASGI app serving ``rooms``, which the caller keeps open while it runs.

    ::

        async with trio_rooms.open_rooms(ChatRoom) as rooms, trio.open_nursery() as nursery:
            config = trio_rooms.hypercorn_config(rooms.config, "127.0.0.1:8000")
            await nursery.start(hypercorn.trio.serve, trio_rooms.bind_asgi(rooms), config)

    Leave the `open_rooms` block before stopping hypercorn (nest hypercorn's nursery
    outside it): the sessions are then closed with 1001 while hypercorn still
    carries their close frames. If hypercorn is cancelled first, each session is
    still sent 1001, without waiting for the client's answer.

    The app answers the ASGI lifespan at once (the `Rooms` is not its to open).

    Raises:
        TypeError: the room class's routes are declared wrongly (when `open_rooms`
            was given the class itself, they are checked here).
    """
    app = _RoomsApp(rooms.config, _room_class(rooms._factory))
    app.rooms = rooms
    return app


def asgi_app(
    factory: Callable[[str], Room[Any]],
    *,
    config: RoomsConfig | None = None,
    storage: Storage | None = None,
) -> ASGIApp:
    """An ASGI app that opens its own `Rooms` for the ASGI lifespan.

    For the hypercorn CLI, with the trio worker::

        # chat.py
        app = trio_rooms.asgi_app(ChatRoom)

        $ hypercorn --worker-class trio chat:app

    `open_rooms` is entered on ``lifespan.startup`` and left on ``lifespan.shutdown``;
    requests that arrive outside that window get 503 (a WebSocket is refused before
    its upgrade). Hypercorn stops a worker by waiting ``graceful_timeout`` for open
    connections and then cancelling them: every session is then sent 1001.

    Set hypercorn's ``websocket_max_message_size`` to ``config.max_message_size``
    (a TOML file given with ``--config``: ``websocket_max_message_size = 1048576``;
    or ``--config python:chat`` with a module-level ``websocket_max_message_size``).

    Args:
        factory: Makes a room from its name, as for `open_rooms`.
        config: Limits and options; `RoomsConfig()` by default.
        storage: Where session data and room state live, as for `open_rooms`.

    Raises:
        TypeError: ``factory`` is a room class whose routes are declared wrongly.
    """
    config = config or RoomsConfig()
    app = _RoomsApp(config, _room_class(factory))
    app.factory = factory
    app.storage = storage
    return app


def hypercorn_config(
    rooms_config: RoomsConfig, bind: str | Sequence[str] = "127.0.0.1:8000"
) -> HypercornConfig:
    """A hypercorn ``Config`` that listens on ``bind`` and agrees with ``rooms_config``.

    ``websocket_max_message_size`` is ``rooms_config.max_message_size``, and
    ``keep_alive_timeout`` is ``rooms_config.handshake_timeout`` (hypercorn drops a
    connection whose request is not complete by then: a slowloris client). Pass port 0
    for a free port: ``hypercorn.trio.serve`` reports the bound addresses through
    ``task_status`` (``["http://127.0.0.1:54321"]``).

    ``websocket_ping_interval`` stays off: with it, hypercorn 0.18 pings from a task of
    its own, and a client's protocol error that closes the connection while that task
    writes raises ``trio.BusyResourceError`` out of hypercorn's ``protocol_send``, which
    stops the whole server (``tests/abuse/test_fuzz.py``). Those pings set no deadline
    for the pong anyway (they only keep middleboxes from dropping an idle connection), so
    behind hypercorn a peer that vanished without a FIN is noticed when a write to it
    fails, with or without them.
    """
    config = HypercornConfig()
    config.bind = [bind] if isinstance(bind, str) else list(bind)
    config.websocket_max_message_size = rooms_config.max_message_size
    config.keep_alive_timeout = rooms_config.handshake_timeout
    return config


def _room_class(factory: object) -> type | None:
    """The room class the factory makes, its routes checked; None if it cannot be told."""
    room_class = room_class_of(factory)
    if room_class is not None:
        route_table(room_class)
    return room_class


@final
class _RoomsApp:
    """The ASGI app: WebSocket sessions and HTTP routes of ``rooms``."""

    def __init__(self, config: RoomsConfig, room_class: type | None) -> None:
        self.config = config
        self.room_class = room_class
        #: The `Rooms` requests go to; None outside the lifespan of an owning app.
        self.rooms: Rooms[Any] | None = None
        #: Set for an app that owns its `Rooms` (opened on lifespan.startup).
        self.factory: Callable[[str], Room[Any]] | None = None
        self.storage: Storage | None = None
        self.records = JsonRecords(
            camel_case=config.camel_case, forbid_extra_keys=config.forbid_extra_keys
        )

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:
            await self._lifespan(receive, send)

    # ------------------------------------------------------------------ lifespan

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        factory = self.factory
        if factory is None:  # bound to a Rooms the caller owns
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            await send({"type": "lifespan.shutdown.complete"})
            return
        started = False
        try:
            async with open_rooms(factory, config=self.config, storage=self.storage) as rooms:
                self.rooms = rooms
                started = True
                await send({"type": "lifespan.startup.complete"})
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
        except Exception as exc:
            self.rooms = None
            _logger.exception("rooms failed")
            if started:
                await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
            else:
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        self.rooms = None
        await send({"type": "lifespan.shutdown.complete"})

    # ----------------------------------------------------------------- websocket

    async def _websocket(
        self, scope: WebsocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        rooms = self.rooms
        if rooms is None:
            await _refuse(scope, send, 503, "Service Unavailable: the rooms are not running", 1011)
            return
        client = scope["client"]
        address = client[0] if client is not None else None
        counter = rooms._connections
        counter.enter(address)
        try:
            await self._serve_websocket(rooms, scope, receive, send)
        finally:
            counter.exit(address)

    async def _serve_websocket(
        self,
        rooms: Rooms[Any],
        scope: WebsocketScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
    ) -> None:
        try:
            target = route_websocket(self.config, _target(scope))
            request = ConnectRequest(
                room=target.room,
                path=target.path,
                query_string=target.query_string,
                headers=_headers(scope["headers"]),
                client=scope["client"],
                subprotocols=tuple(scope["subprotocols"]),
            )
            await rooms._admit(request)
        except HttpRejection as rejection:
            code = 1013 if rejection.status == 503 else 1008
            await _refuse(scope, send, rejection.status, rejection.body, code)
            return
        await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
        connection = _AsgiConnection(receive, send, self.config.max_message_size)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.watch_cancellation)
            try:
                code, reason = await rooms._serve(target.room, request, target.wire, connection)
                # The session's writer gives up on its close frame after close_timeout,
                # but hypercorn's shielded write it was stuck in may still get through;
                # ending without a close would make hypercorn send 1011 instead.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await connection.close(1000 if code in (1005, 1006) else code, reason)
            except RoomsClosedError:
                await connection.close(1001, "server shutting down")
            except Exception:
                _logger.exception("room %r could not admit a session", target.room)
                await connection.close(1011, "room failed to start")
            nursery.cancel_scope.cancel()

    # ---------------------------------------------------------------------- http

    async def _http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        response = await self._respond(scope, receive)
        if response is not None:
            await _send_response(send, response)

    async def _respond(self, scope: HTTPScope, receive: ASGIReceiveCallable) -> Response | None:
        """The response to an HTTP request; None if the client left before sending it all."""
        path, _, query_string = _target(scope).partition("?")
        head = self.config.prefix + "/"
        if not path.startswith(head):
            return Response.text(404, "Not Found")
        name, slash, rest = path[len(head) :].partition("/")
        if not slash:
            return Response.text(404, "Not Found")
        route_path = "/" + rest
        if route_path == "/websocket":
            return Response.text(400, "Expected websocket")
        try:
            validate_room_name(name)
        except RoomNameError as exc:
            return Response.text(400, str(exc))
        rooms = self.rooms
        if rooms is None:
            return Response.text(503, "Service Unavailable: the rooms are not running")
        method = scope["method"].upper()
        match = None
        if self.room_class is not None:  # answer 404 and 405 without creating the room
            match = match_route(self.room_class, method, route_path)
            if match.response is not None:
                return match.response
        body = await _read_body(receive, self.config.max_message_size)
        if body is None:
            return None
        if isinstance(body, Response):
            return body
        try:
            room: Room[Any] = await rooms.get(name)
        except RoomsClosedError:
            return Response.text(503, "Service Unavailable: the rooms are shutting down")
        except TooManyRoomsError as exc:
            return Response.text(503, f"Service Unavailable: {exc}")
        except Exception:
            _logger.exception("room %r failed to start", name)
            return Response.text(500, "Internal Server Error")
        if match is None:
            match = match_route(type(room), method, route_path)
            if match.response is not None:
                return match.response
        assert match.endpoint is not None
        request = HttpRequest(
            room=name,
            method=method,
            path=path,
            query_string=query_string,
            headers=_headers(scope["headers"]),
            body=body,
            client=scope["client"],
        )
        return await call_route(room, match.endpoint, request, self.records)


@final
class _AsgiConnection:
    """`Connection` over the ``receive`` and ``send`` of an accepted ASGI WebSocket."""

    def __init__(
        self, receive: ASGIReceiveCallable, send: ASGISendCallable, max_message_size: int
    ) -> None:
        self._receive = receive
        self._send = send
        self._max_message_size = max_message_size
        self._receive_scope: trio.CancelScope | None = None
        self._close_sent = False
        # The server cancelled this ASGI call: it reads nothing more from the socket,
        # so the client's answer to our close frame will never arrive.
        self._abandoned = False

    def attach(self, outbound: OutboundQueue) -> None:
        # Hypercorn answers pings itself: no control frames to queue.
        pass

    async def receive(self) -> str | bytes:
        if self._abandoned and self._close_sent:
            raise ConnectionEnded(1006, "server stopped", by_peer=True, send_close=False)
        message: ASGIReceiveEvent | None = None
        with trio.CancelScope() as scope:
            self._receive_scope = scope
            message = await self._receive()
        self._receive_scope = None
        if message is None:  # cancelled by `watch_cancellation`
            raise ConnectionEnded(1006, "server stopped", by_peer=True, send_close=False)
        if message["type"] == "websocket.receive":
            text = message["text"]
            if text is not None:
                size = len(text) if text.isascii() else len(text.encode())
                data: str | bytes = text
            else:
                data = message["bytes"] or b""
                size = len(data)
            if size > self._max_message_size:
                raise ConnectionEnded(1009, "message too big", by_peer=False)
            return data
        if message["type"] == "websocket.disconnect":
            # Hypercorn has completed the close handshake (or the socket is gone).
            raise ConnectionEnded(message["code"], "", by_peer=True, send_close=False)
        raise ConnectionEnded(1006, f"unexpected ASGI event {message['type']}", by_peer=True)

    async def send(self, frames: list[Frame]) -> None:
        send = self._send
        with _closing_is_broken():
            for frame in frames:
                if frame.opcode == TEXT:
                    await send(
                        {"type": "websocket.send", "bytes": None, "text": frame.payload.decode()}
                    )
                elif frame.opcode == BINARY:
                    await send({"type": "websocket.send", "bytes": frame.payload, "text": None})

    async def close(self, code: int, reason: str) -> None:
        if not self._close_sent:
            self._close_sent = True
            with _closing_is_broken():
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            self._stop_receiving_if_abandoned()

    async def watch_cancellation(self) -> None:
        """Sleep until the ASGI call is cancelled; then stop waiting for the client."""
        try:
            await trio.sleep_forever()
        finally:
            self._abandoned = True
            self._stop_receiving_if_abandoned()

    def _stop_receiving_if_abandoned(self) -> None:
        if self._abandoned and self._close_sent and self._receive_scope is not None:
            self._receive_scope.cancel()


@contextmanager
def _closing_is_broken() -> Generator[None]:
    """Treat hypercorn closing the socket under a send as the connection being gone.

    hypercorn 0.18 serialises the app's writes but closes the socket (``send_eof``)
    without that lock, so a write racing with the close of a connection the client
    broke raises ``trio.BusyResourceError``.
    """
    try:
        yield
    except trio.BusyResourceError as exc:
        raise trio.BrokenResourceError("hypercorn closed the connection") from exc


def _target(scope: HTTPScope | WebsocketScope) -> str:
    """The request target as the client sent it (still percent-encoded), with its query."""
    raw = scope["raw_path"]
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    query = scope["query_string"]
    return f"{path}?{query.decode('latin-1')}" if query else path


def _headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
        for name, value in headers
    )


async def _refuse(
    scope: WebsocketScope, send: ASGISendCallable, status: int, body: str, code: int
) -> None:
    """Refuse a WebSocket before its upgrade: as HTTP when the server allows it."""
    if "websocket.http.response" in scope["extensions"]:
        data = body.encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": data, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": code, "reason": body[:100]})


async def _read_body(receive: ASGIReceiveCallable, limit: int) -> bytes | Response | None:
    """The request body; a 413 `Response` past ``limit``; None if the client left."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        size += len(message["body"])
        if size > limit:
            return Response.text(413, f"Payload Too Large: the limit is {limit} bytes")
        parts.append(message["body"])
        if not message["more_body"]:
            return b"".join(parts)


async def _send_response(send: ASGISendCallable, response: Response) -> None:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers
    ]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})
