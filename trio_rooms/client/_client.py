"""``RoomClient`` and ``open_room_client``: a typed, reconnecting client of one room.

``RoomClient`` is the user's endpoint over a ``ClientState``; the ``Supervisor`` keeps
it connected, one ``Connection`` after another.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, Never, TypeVar, cast, final, overload

import trio
from typing_extensions import TypeVar as DefaultTypeVar

from .._errors import ConnectionClosedError, DecodeError
from .._message import Message
from .._rpc import Request
from .._wire import add_rid
from ..codec import Codec, WireFormat, make_codec
from . import _transport
from ._connection import ConnectionSettings
from ._errors import ClientQueueFullError, ServerError
from ._events import ClientEvent
from ._frames import Endpoint, parse_url
from ._policy import ReconnectPolicy
from ._presence import ClientPresence, PresenceTracker
from ._session_class import SessionClass, log_invalid, message_classes_of
from ._state import ClientState
from ._supervisor import Supervisor

__all__ = ["RoomClient", "open_room_client"]

ServerMsgT = TypeVar("ServerMsgT", bound=Message)
ClientMsgT = TypeVar("ClientMsgT", bound=Message)
RetT = TypeVar("RetT")
#: The room's presence metadata class; ``Never`` for a client opened without ``presence``.
MetaT = DefaultTypeVar("MetaT", default=Never)


@final
class RoomClient(Generic[ServerMsgT, ClientMsgT, MetaT]):
    """A connection to one room that survives restarts. Made by :func:`open_room_client`.

    ``send`` takes the room's client messages, ``receive`` returns its server messages;
    with ``presence=Meta``, ``presence`` holds the room's presences with ``Meta``
    metadata.
    """

    def __init__(
        self,
        state: ClientState[ServerMsgT],
        supervisor: Supervisor[ServerMsgT],
        client_codec: Codec[ClientMsgT],
        max_queued: int,
        close_timeout: float,
        presence: ClientPresence[MetaT],
    ) -> None:
        self._state = state
        self._presence = presence
        self._supervisor = supervisor
        self._client_codec = client_codec
        self._text = client_codec.format == "json"
        self._max_queued = max_queued
        self._close_timeout = close_timeout

    @property
    def session_id(self) -> str | None:
        """The server's id for this client's session; ``None`` without ``resume``.

        Known once ``open_room_client`` has connected; after a reconnect that could not
        resume (see :class:`Reconnected`) it is the new session's id.
        """
        session = self._state.session
        return session.id if session is not None else None

    @property
    def connected(self) -> bool:
        """Whether a connection is open now (``False`` while reconnecting)."""
        return self._state.connected

    @property
    def events(self) -> trio.MemoryReceiveChannel[ClientEvent[MetaT]]:
        """A :class:`Reconnected` for every reconnect, resumed or fresh, in order, each
        followed by a :class:`Resynced` if the messages it missed could not be replayed;
        with ``presence=Meta``, a :class:`PresenceChanged` for each presence frame.

        Unbounded: one small object per reconnect, and with ``presence`` one per
        presence change the room sends, so a client that asks for presence reads it.
        """
        # The metas the tracker decodes are of the client's MetaT.
        return cast("trio.MemoryReceiveChannel[ClientEvent[MetaT]]", self._state.events)

    @property
    def presence(self) -> ClientPresence[MetaT]:
        """The room's presences, key -> presences in join order (a live, read-only view).

        Filled once the session subscribes to presence (``Session.subscribe_presence``)
        and kept up to date by the server's diffs; on a reconnect it holds the last
        state until the new connection's state replaces it. Always empty for a client
        opened without ``presence``.
        """
        return self._presence

    async def wait_disconnected(self) -> None:
        """Wait until the current connection ends (returns at once while disconnected).

        The client then reconnects, or ends, on its own.
        """
        await self._state.wait_disconnected()

    def send(self, message: ClientMsgT) -> None:
        """Queue ``message`` for the server; never blocks.

        Messages are written in the order queued. While disconnected they wait for the
        next connection; a message being written when the connection drops is written
        again on the next one.

        Raises:
            ClientQueueFullError: ``max_queued`` messages are waiting already.
            trio.ClosedResourceError: The client was closed.
            ConnectionClosedError: The connection ended for good (see ``receive``).
            TypeError: ``message`` is not one of the client messages, or is a
                `trio_rooms.Request` (send it with ``request``).
        """
        name = type(message).__qualname__
        if isinstance(message, Request):
            raise TypeError(f"{name} is a request: use request()")
        state = self._state
        if state.closing:
            raise trio.ClosedResourceError("the client is closed")
        if state.outcome is not None:
            raise state.outcome
        if len(state.outbox) >= self._max_queued:
            raise ClientQueueFullError(self._max_queued)
        payload = self._client_codec.encode(message)
        state.queue(payload.decode() if self._text else payload)

    async def request(self, message: Request[RetT], *, timeout: float = 10.0) -> RetT:
        """Send the request ``message`` and wait for its reply, typed by its class.

        ::

            score = await client.request(GetScore(player="ann"), timeout=5)

        It is queued as ``send`` queues (so, while reconnecting, it goes out on the next
        connection) and answered once. Requests may be answered out of order.

        Raises:
            RequestError: The server answered with an error (its handler refused or
                failed, or too many requests were in flight), or the connection was
                lost after the request was written, before its reply came: it may have
                run (it is never sent twice).
            TimeoutError: No reply within ``timeout`` seconds; it may still run.
            DecodeError: The reply is not one of the request's reply classes.
            ValueError: ``timeout`` is not > 0.
            TypeError, ClientQueueFullError, trio.ClosedResourceError,
                ConnectionClosedError: As for ``send``; the last two also when the
                client ends while the request waits.
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        state = self._state
        if state.closing:
            raise trio.ClosedResourceError("the client is closed")
        if state.outcome is not None:
            raise state.outcome
        if len(state.outbox) >= self._max_queued:
            raise ClientQueueFullError(self._max_queued)
        # A request class outside the client messages is the codec's TypeError.
        payload = self._client_codec.encode(cast("ClientMsgT", message))
        rid, waiter = state.requests.open()
        frame = add_rid(self._client_codec.format, payload, rid)
        waiter.frame = frame.decode() if self._text else frame
        state.queue(waiter.frame)
        try:
            with trio.fail_after(timeout):
                await waiter.done.wait()
        except trio.TooSlowError:
            raise TimeoutError(f"no reply to {message.tag!r} within {timeout:g} seconds") from None
        finally:
            state.requests.discard(rid)
        reply = waiter.result
        if isinstance(reply, Exception):
            raise reply
        if not isinstance(reply, message.reply_classes):
            expected = " | ".join(cls.__qualname__ for cls in message.reply_classes)
            raise DecodeError(
                f"expected a reply of type {expected} to {message.tag!r}, "
                f"got {type(reply).__qualname__}",
                frame=waiter.frame,
            )
        return cast("RetT", reply)

    async def receive(self) -> ServerMsgT:
        """Wait for the next server message; reconnects happen underneath.

        A frame that is not one of the server messages is not returned: it goes to
        ``on_invalid`` (by default logged) and the next message is waited for.

        Raises:
            ServerError: The server sent a library ``{"error": ...}`` frame (unless
                ``on_error`` handles it). The client stays connected.
            ConnectionClosedError: The server closed with a code that is not retried
                (1000, 1003, 1008, 1009, 4001, ...), or reconnecting gave up; ``code`` and
                ``reason`` say why.
            ConnectionRejectedError: A reconnect was refused at the handshake.
            trio.ClosedResourceError: The client was closed with ``aclose``.
        """
        try:
            item = await self._state.inbox.receive()
        except trio.EndOfChannel:
            item = None
        if item is None:
            # Raised outside the except block, so the error keeps its own cause.
            if self._state.outcome is not None:
                raise self._state.outcome
            raise trio.ClosedResourceError("the client is closed")
        if isinstance(item, Exception):
            raise item
        return item

    def __aiter__(self) -> RoomClient[ServerMsgT, ClientMsgT, MetaT]:
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
        state = self._state
        if state.closing:
            await state.done.wait()
            return
        state.closing = True
        state.wake_writer()
        if not state.connected:
            self._supervisor.cancel()
        with trio.move_on_after(self._close_timeout) as waited:
            await state.done.wait()
        if waited.cancelled_caught:
            self._supervisor.cancel()
            await state.done.wait()


def _any_endpoint(
    open_stream: Callable[[], Awaitable[trio.abc.Stream]],
) -> Callable[[Endpoint], Awaitable[trio.abc.Stream]]:
    async def open_for(endpoint: Endpoint) -> trio.abc.Stream:
        return await open_stream()

    return open_for


@overload
def open_room_client(
    url: str,
    session: type[SessionClass[ServerMsgT, ClientMsgT]],
    /,
    *,
    format: WireFormat = ...,
    resume: bool = ...,
    reconnect: ReconnectPolicy = ...,
    max_queued: int = ...,
    max_message_size: int = ...,
    connect_timeout: float = ...,
    close_timeout: float = ...,
    camel_case: bool = ...,
    on_invalid: Callable[[DecodeError], None] | None = ...,
    on_error: Callable[[ServerError], None] | None = ...,
    rng: random.Random | None = ...,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = ...,
) -> AbstractAsyncContextManager[RoomClient[ServerMsgT, ClientMsgT]]: ...


@overload
def open_room_client(
    url: str,
    session: type[SessionClass[ServerMsgT, ClientMsgT]],
    /,
    *,
    format: WireFormat = ...,
    resume: bool = ...,
    reconnect: ReconnectPolicy = ...,
    max_queued: int = ...,
    max_message_size: int = ...,
    connect_timeout: float = ...,
    close_timeout: float = ...,
    camel_case: bool = ...,
    on_invalid: Callable[[DecodeError], None] | None = ...,
    on_error: Callable[[ServerError], None] | None = ...,
    rng: random.Random | None = ...,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = ...,
    presence: type[MetaT],
) -> AbstractAsyncContextManager[RoomClient[ServerMsgT, ClientMsgT, MetaT]]: ...


@overload
def open_room_client(
    url: str,
    server: tuple[type[ServerMsgT], ...],
    client: tuple[type[ClientMsgT], ...],
    *,
    format: WireFormat = ...,
    resume: bool = ...,
    reconnect: ReconnectPolicy = ...,
    max_queued: int = ...,
    max_message_size: int = ...,
    connect_timeout: float = ...,
    close_timeout: float = ...,
    camel_case: bool = ...,
    on_invalid: Callable[[DecodeError], None] | None = ...,
    on_error: Callable[[ServerError], None] | None = ...,
    rng: random.Random | None = ...,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = ...,
) -> AbstractAsyncContextManager[RoomClient[ServerMsgT, ClientMsgT]]: ...


@overload
def open_room_client(
    url: str,
    server: tuple[type[ServerMsgT], ...],
    client: tuple[type[ClientMsgT], ...],
    *,
    format: WireFormat = ...,
    resume: bool = ...,
    reconnect: ReconnectPolicy = ...,
    max_queued: int = ...,
    max_message_size: int = ...,
    connect_timeout: float = ...,
    close_timeout: float = ...,
    camel_case: bool = ...,
    on_invalid: Callable[[DecodeError], None] | None = ...,
    on_error: Callable[[ServerError], None] | None = ...,
    rng: random.Random | None = ...,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = ...,
    presence: type[MetaT],
) -> AbstractAsyncContextManager[RoomClient[ServerMsgT, ClientMsgT, MetaT]]: ...


@asynccontextmanager
async def open_room_client(
    url: str,
    server: type[SessionClass[ServerMsgT, ClientMsgT]] | tuple[type[ServerMsgT], ...],
    client: tuple[type[ClientMsgT], ...] | None = None,
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
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
    presence: type[MetaT] | None = None,
) -> AsyncGenerator[RoomClient[ServerMsgT, ClientMsgT, MetaT]]:
    """Connect to a room and keep connected until the block ends.

    ::

        async with open_room_client(
            "ws://127.0.0.1:8000/rooms/lobby/websocket", ChatSession
        ) as client:
            client.send(SetName(name="bot"))
            async for message in client:
                ...

    With the server's session class, the client is typed by its two unions:
    ``Session[ChatData, Chat | UserJoined | UserLeft, SendChat | SetName]`` makes a
    ``RoomClient[Chat | UserJoined | UserLeft, SendChat | SetName]``. A client without
    the server's code gives the message classes as two tuples instead::

        open_room_client(url, server=(Chat, UserJoined, UserLeft), client=(SendChat, SetName))

    A frame that is not one of the server messages (a message type the server added
    since, say) goes to ``on_invalid``, by default logged and skipped: it never ends
    the iteration.

    Blocks until connected (and, with ``resume``, until the server has named the
    session). After a drop or a close with 1001, 1012 or 1013 the client reconnects
    according to ``reconnect`` and resumes its session; each reconnect is reported on
    ``client.events``. Any other close ends the client: ``receive`` raises
    ``ConnectionClosedError`` with the code. Leaving the block writes what is queued
    and closes with 1000; cancelling it closes at once.

    Args:
        url: ``ws://`` or ``wss://`` URL of the room's ``/websocket`` endpoint; its query
            is kept (``format`` and ``resume`` are set by the client).
        server: The server's session class, or the server message classes.
        client: The client message classes, when ``server`` is a tuple.
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
        on_invalid: Called with the ``DecodeError`` of each frame that is not a server
            message (its ``frame`` is the frame as received); the frame is skipped.
            By default the error is logged (``trio_rooms.client``, WARNING).
        on_error: Called with a ``ServerError`` for each library ``{"error": ...}`` frame,
            instead of raising it from ``receive``.
        rng: The source of jitter (for reproducible tests).
        open_stream: Opens the byte stream of each connection attempt instead of a TCP
            (and, for ``wss``, TLS) connection to the URL's host; the URL's path and
            query still make the request. `trio_rooms.testing.open_test_client` hands
            in memory streams this way. An ``OSError`` it raises fails the attempt.
        presence: The room's presence metadata class (its ``Presence(Meta)``):
            ``client.presence`` then holds the room's presences with their metadata
            decoded to it, and each ``$presence`` frame is a `PresenceChanged` on
            ``client.events``. Without it those frames are skipped. A meta that does
            not decode goes to ``on_invalid`` and its frame is not applied.

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
        TypeError: ``server`` is neither a session class nor a tuple of message classes,
            a session class is generic (its messages are not bound), or ``presence``
            is not an attrs class the wire can carry.
    """
    if client is None:
        client_classes, server_classes = message_classes_of(server)
    elif isinstance(server, tuple):
        client_classes, server_classes = client, server
    else:
        raise TypeError(
            "expected a session class alone, or a tuple of server and one of client messages"
        )
    endpoint = parse_url(url)
    if max_queued < 1:
        raise ValueError(f"max_queued must be >= 1, got {max_queued}")
    for name, timeout in (("connect_timeout", connect_timeout), ("close_timeout", close_timeout)):
        if not timeout > 0:
            raise ValueError(f"{name} must be > 0, got {timeout!r}")
    tracker = None if presence is None else PresenceTracker(presence, format, camel_case=camel_case)
    settings = ConnectionSettings(
        endpoint=endpoint,
        open_stream=_transport.open_stream if open_stream is None else _any_endpoint(open_stream),
        server_codec=cast(
            "Codec[ServerMsgT]", make_codec(format, *server_classes, camel_case=camel_case)
        ),
        resume=resume,
        max_message_size=max_message_size,
        connect_timeout=connect_timeout,
        close_timeout=close_timeout,
        on_invalid=log_invalid if on_invalid is None else on_invalid,
        on_error=on_error,
        presence=cast("PresenceTracker[object] | None", tracker),
    )
    state = ClientState[ServerMsgT]()
    rng = rng if rng is not None else random.Random()
    supervisor = Supervisor(state, settings, reconnect, rng)
    client_codec = cast(
        "Codec[ClientMsgT]", make_codec(format, *client_classes, camel_case=camel_case)
    )
    view: ClientPresence[MetaT] = ClientPresence[MetaT]({}) if tracker is None else tracker.view
    room_client = RoomClient(state, supervisor, client_codec, max_queued, close_timeout, view)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
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
