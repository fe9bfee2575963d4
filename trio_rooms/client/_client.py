"""``RoomClient`` and ``open_room_client``: a typed, reconnecting client of one room."""

from __future__ import annotations

import functools
import math
import random
from collections import deque
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar, cast, final

import trio
import trio_websocket
import wsproto.utilities

from .._errors import ConnectionClosedError, DecodeError
from .._message import Message
from ..codec import Codec, WireFormat, make_codec
from ._errors import (
    ClientQueueFullError,
    ConnectError,
    ConnectionRejectedError,
    ConnectTimeoutError,
    ServerError,
)
from ._events import Reconnected
from ._frames import Endpoint, SessionInfo, parse_library_frame, parse_url
from ._policy import ReconnectPolicy
from ._transport import WatchedStream, open_stream

__all__ = ["RoomClient", "open_room_client"]

ServerMsgT = TypeVar("ServerMsgT", bound=Message)
ClientMsgT = TypeVar("ClientMsgT", bound=Message)

# The close reason trio-websocket reports when the connection was lost without a close frame.
_LOST = 1006


@final
class RoomClient(Generic[ServerMsgT, ClientMsgT]):
    """A connection to one room that survives restarts. Made by :func:`open_room_client`.

    ``send`` takes the room's client messages, ``receive`` returns its server messages.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        server_codec: Codec[ServerMsgT],
        client_codec: Codec[ClientMsgT],
        *,
        resume: bool,
        reconnect: ReconnectPolicy,
        max_queued: int,
        max_message_size: int,
        connect_timeout: float,
        close_timeout: float,
        on_invalid: Callable[[DecodeError], None] | None,
        on_error: Callable[[ServerError], None] | None,
        rng: random.Random,
    ) -> None:
        self._endpoint = endpoint
        self._server_codec = server_codec
        self._client_codec = client_codec
        self._text = client_codec.format == "json"
        self._resume = resume
        self._policy = reconnect
        self._max_queued = max_queued
        self._max_message_size = max_message_size
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._on_invalid = on_invalid
        self._on_error = on_error
        self._rng = rng
        self._outbox: deque[str | bytes] = deque()
        self._outbox_changed = trio.Event()
        self._inbox_send, self._inbox = trio.open_memory_channel[ServerMsgT | Exception](0)
        self._events_send, self._events = trio.open_memory_channel[Reconnected](math.inf)
        self._session: SessionInfo | None = None
        self._connected = False
        self._disconnected = trio.Event()
        self._closing = False
        self._outcome: Exception | None = None
        self._done = trio.Event()
        self._cancel_scope = trio.CancelScope()

    # -- public API --------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The server's id for this client's session; ``None`` without ``resume``.

        Known once ``open_room_client`` has connected; after a reconnect that could not
        resume (see :class:`Reconnected`) it is the new session's id.
        """
        return self._session.id if self._session is not None else None

    @property
    def connected(self) -> bool:
        """Whether a connection is open now (``False`` while reconnecting)."""
        return self._connected

    @property
    def events(self) -> trio.MemoryReceiveChannel[Reconnected]:
        """A :class:`Reconnected` for every reconnect, resumed or fresh, in order.

        Unbounded (one small object per reconnect); reading it is optional.
        """
        return self._events

    async def wait_disconnected(self) -> None:
        """Wait until the current connection ends (returns at once while disconnected).

        The client then reconnects, or ends, on its own.
        """
        if self._connected:
            await self._disconnected.wait()

    def send(self, message: ClientMsgT) -> None:
        """Queue ``message`` for the server; never blocks.

        Messages are written in the order queued. While disconnected they wait for the
        next connection; a message being written when the connection drops is written
        again on the next one.

        Raises:
            ClientQueueFullError: ``max_queued`` messages are waiting already.
            trio.ClosedResourceError: The client was closed.
            ConnectionClosedError: The connection ended for good (see ``receive``).
            TypeError: ``message`` is not one of the client messages.
        """
        if self._closing:
            raise trio.ClosedResourceError("the client is closed")
        if self._outcome is not None:
            raise self._outcome
        if len(self._outbox) >= self._max_queued:
            raise ClientQueueFullError(self._max_queued)
        payload = self._client_codec.encode(message)
        self._outbox.append(payload.decode() if self._text else payload)
        self._outbox_changed.set()

    async def receive(self) -> ServerMsgT:
        """Wait for the next server message; reconnects happen underneath.

        Raises:
            DecodeError: A frame was not one of the server messages (unless ``on_invalid``
                handles it). The client stays connected; the next call goes on.
            ServerError: The server sent a library ``{"error": ...}`` frame (unless
                ``on_error`` handles it). The client stays connected.
            ConnectionClosedError: The server closed with a code that is not retried
                (1000, 1003, 1008, 1009, 4001, ...), or reconnecting gave up; ``code`` and
                ``reason`` say why.
            ConnectionRejectedError: A reconnect was refused at the handshake.
            trio.ClosedResourceError: The client was closed with ``aclose``.
        """
        try:
            item = await self._inbox.receive()
        except trio.EndOfChannel:
            item = None
        if item is None:
            # Raised outside the except block, so the error keeps its own cause.
            if self._outcome is not None:
                raise self._outcome
            raise trio.ClosedResourceError("the client is closed")
        if isinstance(item, Exception):
            raise item
        return item

    def __aiter__(self) -> RoomClient[ServerMsgT, ClientMsgT]:
        return self

    async def __anext__(self) -> ServerMsgT:
        """The next message; iteration ends when the client or the server closes with 1000."""
        try:
            return await self.receive()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None
        except ConnectionClosedError as exc:
            if exc.code == 1000:
                raise StopAsyncIteration from None
            raise

    async def aclose(self) -> None:
        """Write the queued messages, close with 1000 and wait for the close to finish.

        While disconnected the queued messages are dropped. Gives up after
        ``close_timeout`` (writing included, if the server stopped reading) and closes the
        socket.
        """
        if self._closing:
            await self._done.wait()
            return
        self._closing = True
        self._outbox_changed.set()
        if not self._connected:
            self._cancel_scope.cancel()
        with trio.move_on_after(self._close_timeout) as waited:
            await self._done.wait()
        if waited.cancelled_caught:
            self._cancel_scope.cancel()
            await self._done.wait()

    # -- the connection loop -----------------------------------------------------------

    async def _main(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, then keep the client connected until closed; for ``nursery.start``.

        The first connection is not retried: its failure raises from ``start``. A later
        failure ends the client and is raised by ``receive`` (and ``send``).
        """
        started = False

        def on_started() -> None:
            nonlocal started
            started = True
            task_status.started()

        try:
            with self._cancel_scope:
                await self._run(on_started)
        except Exception as exc:
            if not started:
                raise
            self._outcome = exc
        finally:
            self._connected = False
            self._disconnected.set()
            self._inbox_send.close()
            self._events_send.close()
            self._done.set()

    async def _run(self, on_started: Callable[[], None]) -> None:
        code, reason = await self._connection(on_started)
        while not self._closing:
            if not self._policy.retries(code):
                raise ConnectionClosedError(code, reason)
            previous = self.session_id
            attempts, last_error = 0, None
            for delay in self._policy.delays(self._rng):
                attempts += 1
                await trio.sleep(delay)

                try:
                    code, reason = await self._connection(
                        functools.partial(self._report, code, reason, attempts, previous)
                    )
                except ConnectError as exc:
                    last_error = exc
                    continue
                break
            else:
                message = f"gave up reconnecting after {attempts} attempts"
                raise ConnectionClosedError(code, message) from last_error

    def _report(self, code: int, reason: str, attempts: int, previous: str | None) -> None:
        self._events_send.send_nowait(
            Reconnected(
                code=code,
                reason=reason,
                attempts=attempts,
                resumed=self._session is not None and self._session.resumed,
                session_id=self.session_id,
                previous_session_id=previous,
            )
        )

    async def _connection(self, started: Callable[[], None]) -> tuple[int, str]:
        """One connection, from the handshake to its close; returns the close code and reason.

        Calls ``started`` once the connection is open (and the session known).

        Raises:
            ConnectError: No connection could be opened (``ConnectTimeoutError``: not
                within ``connect_timeout``).
            ConnectionRejectedError: The server refused the handshake.
            ConnectionClosedError: The server closed with a code that is not retried, or
                its first frame was not the session frame, before the connection was open.
        """
        resume = (self._session.token if self._session else "") if self._resume else None
        resource = self._endpoint.resource(self._server_codec.format, resume)
        # Opening is bounded as a whole: name lookup, TCP, TLS, handshake, session frame.
        deadline = trio.current_time() + self._connect_timeout
        raw = None
        with trio.CancelScope(deadline=deadline):
            try:
                raw = await open_stream(self._endpoint)
            except OSError as exc:
                # trio's "all attempts failed" chains a group of each address's error.
                reason = _first(exc.__cause__) if exc.__cause__ is not None else exc
                raise ConnectError(f"could not connect to {self._where}: {reason}") from exc
        if raw is None:
            raise self._timed_out("the TCP connection")
        opening = trio.CancelScope(deadline=deadline)
        # We own the socket: trio-websocket's client leaves it open when the server closes first.
        stream = WatchedStream(raw, opening.cancel)
        failure: Exception | None = None
        result = (_LOST, "")
        try:
            async with trio.open_nursery() as nursery:
                # Exceptions are carried out of the nursery by hand, not in an ExceptionGroup.
                try:
                    ws = await self._open_websocket(nursery, stream, resource, opening)
                    result = await self._serve_and_close(ws, started)
                except Exception as exc:
                    failure = exc
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # trio-websocket's reader task raises a failed handshake into our nursery.
            translated = self._handshake_failure(group)
            if translated is None:
                raise
            raise translated from group
        finally:
            self._connected = False
            self._disconnected.set()
            with trio.CancelScope(shield=True):
                await stream.aclose()
        if failure is not None:
            raise failure
        return result

    @property
    def _where(self) -> str:
        return f"{self._endpoint.host}:{self._endpoint.port}"

    def _timed_out(self, step: str) -> ConnectTimeoutError:
        timeout = self._connect_timeout
        message = f"{step} to {self._where} was not through within connect_timeout={timeout} s"
        return ConnectTimeoutError(message, timeout)

    async def _open_websocket(
        self,
        nursery: trio.Nursery,
        stream: WatchedStream,
        resource: str,
        opening: trio.CancelScope,
    ) -> trio_websocket.WebSocketConnection:
        """The WebSocket handshake and, with ``resume``, the session frame, within ``opening``.

        ``opening`` is cancelled by ``stream`` if the connection ends first, and at the
        ``connect_timeout`` deadline.
        """
        step = "the WebSocket handshake"
        with opening:
            try:
                ws = await trio_websocket.wrap_client_stream(
                    nursery,
                    # Documented as any trio.abc.Stream; only the annotation is narrower.
                    stream,  # pyright: ignore[reportArgumentType]
                    self._endpoint.host,
                    resource,
                    max_message_size=self._max_message_size,
                )
                if self._resume:
                    step = "the session frame"
                    self._session = await self._session_info(ws)
            except trio_websocket.ConnectionRejected as exc:
                body = (exc.body or b"").decode("utf-8", "replace")
                raise ConnectionRejectedError(exc.status_code, body[:1000]) from exc
            except trio_websocket.HandshakeError as exc:
                raise ConnectError(f"the WebSocket handshake failed: {exc!r}") from exc
            except trio_websocket.ConnectionClosed as exc:
                # Closed before the session frame: the connection never opened.
                closed = exc.reason
                code, reason = (closed.code, closed.reason or "") if closed else (_LOST, "")
                if not self._policy.retries(code):
                    raise ConnectionClosedError(code, reason) from exc
                if not stream.ended:
                    message = f"the server at {self._where} closed with {code} before {step}"
                    raise ConnectError(message) from exc
                # Else the connection was dropped: said below, as when the drop came first.
            else:
                return ws
        if stream.ended:
            how = "closed the connection" if stream.error is None else "reset the connection"
            raise ConnectError(f"the server at {self._where} {how} during {step}") from stream.error
        raise self._timed_out(step)

    def _handshake_failure(self, group: BaseExceptionGroup[BaseException]) -> Exception | None:
        """The error to raise for a failed handshake; ``None`` if ``group`` is another failure."""
        rejected, _ = group.split(trio_websocket.ConnectionRejected)
        if rejected is not None:
            first = _first(rejected)
            assert isinstance(first, trio_websocket.ConnectionRejected)
            body = (first.body or b"").decode("utf-8", "replace")
            return ConnectionRejectedError(first.status_code, body[:1000])
        broken, rest = group.split(lambda exc: _server_protocol_error(exc) is not None)
        if broken is not None and rest is None:
            error = _server_protocol_error(_first(broken))
            message = f"the server at {self._where} did not answer as a WebSocket server: {error}"
            return ConnectError(message)
        return None

    async def _serve_and_close(
        self, ws: trio_websocket.WebSocketConnection, started: Callable[[], None]
    ) -> tuple[int, str]:
        try:
            return await self._serve(ws, started)
        finally:
            # When cancelled, trio-websocket's reader is cancelled too and could never
            # read the server's close reply: the socket is just closed (by the caller).
            if trio.current_effective_deadline() != -math.inf:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self._close_timeout
                    await ws.aclose()

    async def _serve(
        self, ws: trio_websocket.WebSocketConnection, started: Callable[[], None]
    ) -> tuple[int, str]:
        try:
            self._connected = True
            self._disconnected = trio.Event()
            started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, ws, nursery.cancel_scope)
                await self._read(ws)
                # Our own close stops the reader at once: let the writer wait for the answer.
                if not self._closing:
                    nursery.cancel_scope.cancel()
        except trio_websocket.ConnectionClosed:
            pass
        closed = ws.closed
        if closed is None:
            return _LOST, ""
        return closed.code, closed.reason or ""

    async def _session_info(self, ws: trio_websocket.WebSocketConnection) -> SessionInfo:
        frame = await ws.get_message()
        info = parse_library_frame(frame)
        if not isinstance(info, SessionInfo):
            await ws.aclose(1002, "expected the $session frame first")
            raise ConnectionClosedError(
                1002, f"expected the $session frame first, got {frame[:200]!r}"
            )
        return info

    async def _read(self, ws: trio_websocket.WebSocketConnection) -> None:
        """Hand frames to ``receive`` until the connection closes."""
        while True:
            try:
                frame = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            item: ServerMsgT | Exception
            try:
                item = self._server_codec.decode(frame)
            except DecodeError as exc:
                item = self._library_frame(frame, exc)
                if isinstance(item, DecodeError) and self._on_invalid is not None:
                    self._on_invalid(item)
                    continue
                if isinstance(item, ServerError) and self._on_error is not None:
                    self._on_error(item)
                    continue
            await self._inbox_send.send(item)

    def _library_frame(self, frame: bytes | str, error: DecodeError) -> Exception:
        parsed = parse_library_frame(frame)
        if isinstance(parsed, str):
            return ServerError(parsed)
        if isinstance(parsed, SessionInfo):
            return DecodeError("unexpected $session frame in the middle of a connection")
        return error

    async def _write(
        self, ws: trio_websocket.WebSocketConnection, connection_scope: trio.CancelScope
    ) -> None:
        while True:
            try:
                while self._outbox:
                    # Dequeue only once written: a frame cut off by a drop is sent again.
                    await ws.send_message(self._outbox[0])
                    self._outbox.popleft()
                if self._closing:
                    await ws.aclose(1000)
                    # The reader may be waiting for someone to receive: stop it too.
                    connection_scope.cancel()
                    return
            except trio_websocket.ConnectionClosed:
                return  # the reader reports how it closed
            self._outbox_changed = trio.Event()
            await self._outbox_changed.wait()


@asynccontextmanager
async def open_room_client(
    url: str,
    server: tuple[type[ServerMsgT], ...],
    client: tuple[type[ClientMsgT], ...],
    *,
    format: WireFormat = "json",
    resume: bool = True,
    reconnect: ReconnectPolicy = ReconnectPolicy(),  # noqa: B008 - frozen, so shareable
    max_queued: int = 1000,
    max_message_size: int = 2**20,
    connect_timeout: float = 10.0,
    close_timeout: float = 5.0,
    camel_case: bool = True,
    on_invalid: Callable[[DecodeError], None] | None = None,
    on_error: Callable[[ServerError], None] | None = None,
    rng: random.Random | None = None,
) -> AsyncGenerator[RoomClient[ServerMsgT, ClientMsgT]]:
    """Connect to a room and keep connected until the block ends.

    ::

        async with open_room_client(
            "ws://127.0.0.1:8000/rooms/lobby/websocket",
            server=(Chat, UserJoined, UserLeft),
            client=(SendChat, SetName),
        ) as client:
            client.send(SetName(name="bot"))
            async for message in client:
                ...

    The message classes are given as tuples, so the client is typed by their unions:
    ``RoomClient[Chat | UserJoined | UserLeft, SendChat | SetName]``.

    Blocks until connected (and, with ``resume``, until the server has named the
    session). After a drop or a close with 1001, 1012 or 1013 the client reconnects
    according to ``reconnect`` and resumes its session; each reconnect is reported on
    ``client.events``. Any other close ends the client: ``receive`` raises
    ``ConnectionClosedError`` with the code. Leaving the block writes what is queued
    and closes with 1000; cancelling it closes at once.

    Args:
        url: ``ws://`` or ``wss://`` URL of the room's ``/websocket`` endpoint; its query
            is kept (``format`` and ``resume`` are set by the client).
        server: The server message classes.
        client: The client message classes.
        format: ``"json"`` (text frames) or ``"msgpack"`` (binary frames).
        resume: Ask for a resumable session and resume it after reconnecting.
        reconnect: Backoff between attempts and when to give up.
        max_queued: Messages that may wait to be written; ``send`` raises
            ``ClientQueueFullError`` past it.
        max_message_size: The largest frame accepted from the server, in bytes.
        connect_timeout: Seconds each connection attempt may take to open: name lookup,
            TCP and TLS, the WebSocket handshake and, with ``resume``, the session frame.
            A connection that ends before it is open fails the attempt at once.
        close_timeout: Seconds ``aclose`` (and leaving the block) waits for the queue to
            be written and the server to answer the close, before closing the socket.
        camel_case: The server's ``RoomsConfig.camel_case``.
        on_invalid: Called with the ``DecodeError`` of a frame that is not a server
            message, instead of raising it from ``receive``.
        on_error: Called with a ``ServerError`` for each library ``{"error": ...}`` frame,
            instead of raising it from ``receive``.
        rng: The source of jitter (for reproducible tests).

    Raises:
        ConnectError: No connection could be opened (the first connection is not
            retried): the server could not be reached, it ended the connection before it
            was open, or (``ConnectTimeoutError``) it did not open within
            ``connect_timeout``.
        ConnectionRejectedError: The server refused the handshake; never retried.
        ConnectionClosedError: The server closed the connection with a code that is not
            retried before it was open.
        ValueError: ``url`` is not a ``ws`` or ``wss`` URL, ``max_queued`` < 1, or
            ``connect_timeout`` or ``close_timeout`` is not > 0.
    """
    endpoint = parse_url(url)
    if max_queued < 1:
        raise ValueError(f"max_queued must be >= 1, got {max_queued}")
    for name, timeout in (("connect_timeout", connect_timeout), ("close_timeout", close_timeout)):
        if not timeout > 0:
            raise ValueError(f"{name} must be > 0, got {timeout!r}")
    room_client = RoomClient(
        endpoint,
        make_codec(format, *server, camel_case=camel_case),
        make_codec(format, *client, camel_case=camel_case),
        resume=resume,
        reconnect=reconnect,
        max_queued=max_queued,
        max_message_size=max_message_size,
        connect_timeout=connect_timeout,
        close_timeout=close_timeout,
        on_invalid=on_invalid,
        on_error=on_error,
        rng=rng if rng is not None else random.Random(),
    )
    try:
        async with trio.open_nursery() as nursery:
            # The task belongs to the client; only this module starts it.
            await nursery.start(room_client._main)  # pyright: ignore[reportPrivateUsage]
            try:
                yield room_client
            finally:
                await room_client.aclose()
    except BaseExceptionGroup as group:
        # The client's task never raises once started: the group holds the block's error.
        if len(group.exceptions) == 1:
            error = group.exceptions[0]
            raise error from error.__cause__
        raise


def _server_protocol_error(exc: BaseException) -> wsproto.utilities.ProtocolError | None:
    """The server's protocol error behind ``exc``, raised by trio-websocket's reader.

    Answering a bad handshake reply, the reader sends a server's rejection, which h11
    refuses: the server's own error is then in the chain of contexts.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, wsproto.utilities.ProtocolError):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None


def _first(exc: BaseException) -> BaseException:
    """``exc``, or its first leaf exception if it is a group."""
    while isinstance(exc, BaseExceptionGroup):
        exc = cast("BaseExceptionGroup[BaseException]", exc).exceptions[0]
    return exc
