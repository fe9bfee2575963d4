"""The embedded WebSocket server: trio streams and h11, built for fan-out.

h11 parses the request head (`_handshake`), `_inbound` the client's (masked, possibly
fragmented) frames; outbound frames are framed here once per broadcast (see
`_framing`) and each session's queued frames are written with one ``send_all``. What a
connection means is the core's serving port (`admit_session`, `serve_http`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, Final, TypeVar, final

import trio

from .._core.admission import ConnectionCounter
from .._core.config import RoomsConfig
from .._core.connection import ConnectionEnded, ConnectionParked
from .._core.http_serving import HttpHead, serve_http
from .._core.outbound import PING, PONG, Frame, OutboundQueue
from .._core.room import Room
from .._core.rooms import Rooms
from .._core.serving import ParkedSession, WebSocketHead, admit_session, connection_counter
from ._accept import serve_accepting
from ._framing import close_frame, http_response, response_bytes, wire_bytes
from ._handshake import HandshakeParser, NeedData, PlainRequest, Refusal, Upgrade
from ._inbound import Closed, InboundEvent, InboundParser, Ping
from ._keepalive import Keepalive
from ._parking import Parking
from ._socket_stream import RawSocket, socket_of
from ._throttle import ThrottledLog
from ._watching import Watching

__all__ = ["serve_websocket"]

RoomT = TypeVar("RoomT", bound=Room[Any])

_logger = logging.getLogger("trio_rooms")

_RECEIVE_SIZE = 65536

# What a peer causes (a bad handshake, a reset) is logged without a traceback, and a
# flood of it in one line per interval.
_refused = ThrottledLog(_logger, logging.INFO, 10.0)
_lost = ThrottledLog(_logger, logging.DEBUG, 10.0)

# After refusing a handshake: how long, and how much, the client's input is drained.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 1024 * 1024

# What socket calls (getpeername, setsockopt, os.write, close) raise when the peer or
# the network dropped the connection; trio turns them into BrokenResourceError itself.
_PEER_ERRNOS = frozenset(
    {
        errno.ECONNABORTED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENOTCONN,
        errno.EPIPE,
        errno.ETIMEDOUT,
    }
)


async def serve_websocket(
    rooms: Rooms[RoomT],
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``rooms`` over WebSocket on ``host:port`` until cancelled.

    Clients connect to ``ws://host:port{prefix}/{room}/websocket`` (``?format=msgpack``
    for binary frames). With ``nursery.start``, returns the bound port once listening
    (pass port 0 for a free one).

    Each connection runs in its own task; whatever goes wrong in one (a bad frame, a
    reset, a failing hook) ends that connection only. When cancelled, the server stops
    accepting, closes its sessions with 1001 and returns once they have ended.
    """
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=1024)
    bound: int = listeners[0].socket.getsockname()[1]
    config = rooms.config
    parking = Parking() if config.park_after is not None and Parking.available() else None
    keepalive = Keepalive(config.ping_interval, config.ping_timeout, config.park_after)
    keepalive.parking = parking
    watching = Watching() if Watching.available() else None
    keepalive.watching = watching
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keepalive.run)
        if parking is not None:
            # Parked connections run on in this nursery: it owns them for shutdown.
            nursery.start_soon(parking.run, nursery)
        if watching is not None:
            await nursery.start(watching.run)
        handler = partial(_serve_stream, rooms, keepalive)
        await nursery.start(serve_accepting, handler, listeners)
        task_status.started(bound)


async def serve_stream(rooms: Rooms[RoomT], stream: trio.abc.Stream) -> None:
    """Run one WebSocket connection on ``stream`` until its session ends, then close it.

    The handshake must complete within ``handshake_timeout``; a request that is not a
    valid opening handshake gets a 4xx answer (426 for another WebSocket version), a
    request for another path 404 and an invalid room name 400, before any room exists.
    Whatever goes wrong ends this connection only: what the peer caused (a reset, bad
    input) is logged in one rate-limited line, anything else with its traceback. No
    keepalive pings are sent (`serve_websocket` runs them for its connections).
    """
    try:
        peer = _peer(stream)  # fails if the peer reset the connection before its accept
    except Exception as exc:
        _failed(exc, None)
        await _close(stream)
        return
    await _serve_stream(rooms, None, stream, peer)


async def _serve_stream(
    rooms: Rooms[Any],
    keepalive: Keepalive | None,
    stream: trio.abc.Stream,
    peer: tuple[str, int] | None,
) -> None:
    # This task lives as long as its session, unless it parks: what its frame holds is
    # kept per connection (no closures, whose cells would stay; no ``with`` block, whose
    # ``__exit__`` would; the handshake's objects go).
    parked: _ParkedStream | None = None  # then it owns what the finally blocks end
    try:
        # Counted from the accept: a client still in its handshake holds a slot too.
        counter = connection_counter(rooms)
        address = peer[0] if peer is not None else None
        counter.enter(address)
        try:
            request = await _handshake(rooms, stream, peer)
            if request is not None:
                upgrade = _Upgrade(stream, rooms.config, keepalive, request)
                head = WebSocketHead(request.target, request.headers, peer, request.subprotocols)
                try:
                    # The session's run is awaited here, in this frame: a coroutine less.
                    session = await admit_session(
                        rooms, head, accept=upgrade.accept, refuse=upgrade.refuse
                    )
                    del request, head  # the handshake's: not kept while the session runs
                    ended = await session
                    if isinstance(ended, ParkedSession):
                        parked = _ParkedStream(stream, peer, counter, address, upgrade, ended)
                finally:
                    if parked is None:
                        upgrade.ended()
        finally:
            if parked is None:
                counter.exit(address)
    except Exception as exc:
        _failed(exc, peer)  # never let one connection reach the listener: it would stop
    finally:
        if parked is None:
            await _close(stream)
    if parked is not None:
        await parked.settle()


@final
class _ParkedStream:
    """A connection whose session parked: the end of its task, for a later one to run.

    The connection's task returns once it is watched by its server's `Parking`; its
    next task runs the session on from there and ends the connection as the first one
    would have (the keepalive entry, the connection's count, the socket).
    """

    __slots__ = ("_address", "_counter", "_peer", "_session", "_stream", "_upgrade")

    def __init__(
        self,
        stream: trio.abc.Stream,
        peer: tuple[str, int] | None,
        counter: ConnectionCounter,
        address: str | None,
        upgrade: _Upgrade,
        session: ParkedSession,
    ) -> None:
        self._stream = stream
        self._peer = peer
        self._counter = counter
        self._address = address
        self._upgrade = upgrade
        self._session = session

    async def settle(self) -> None:
        """Leave the connection to its server's waiter, or run it on here if it cannot."""
        try:
            parked = self._park()
        except Exception as exc:  # one connection's failure must never reach the listener
            _failed(exc, self._peer)
            parked = False
        if not parked:
            await self.resume()

    def _park(self) -> bool:
        connection = self._upgrade.connection
        if connection is None or not self._session.wake_with(self.wake):
            return False
        if not connection.park(self):
            return False
        self._session.held()  # parked only now: counted once its socket is watched
        return True

    def wake(self) -> None:
        """The session needs its tasks (its writer, its close): start its task now."""
        connection = self._upgrade.connection
        if connection is not None:
            connection.wake()

    def readable(self) -> bool:
        connection = self._upgrade.connection
        if connection is None or connection.parked_input():
            self._session.taken()
            return True
        return False

    async def resume(self) -> None:
        handed = False
        try:
            try:
                try:
                    while not handed:
                        ended = await self._session.resume()
                        if not isinstance(ended, ParkedSession):
                            break
                        handed = self._park()
                finally:
                    if not handed:
                        self._upgrade.ended()
            finally:
                if not handed:
                    self._counter.exit(self._address)
        except Exception as exc:
            _failed(exc, self._peer)
        finally:
            if not handed:
                await _close(self._stream)


def _failed(exc: Exception, peer: tuple[str, int] | None) -> None:
    """Log what ended a connection (called in its ``except`` block, for the traceback)."""
    if _peer_gone(exc):
        _lost.log("connection from %s lost: %r", _describe(peer), exc)
    else:
        _logger.exception("connection from %s failed", _describe(peer))


async def _handshake(
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
class _Upgrade:
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
        self.connection: _StreamConnection | None = None

    async def accept(self) -> _StreamConnection:
        await _send_small(self._stream, self._response)
        connection = _StreamConnection(self._stream, self._config, received=self._received)
        self._response = self._received = b""
        self.connection = connection
        if self._keepalive is not None:
            self._keepalive.add(connection)
            connection.parking = self._keepalive.parking
            connection.watching = self._keepalive.watching
        return connection

    async def refuse(self, status: int, body: str) -> None:
        await _refuse(self._stream, http_response(status, body))

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
    data = _read_now(stream)
    if data is not None:
        await trio.lowlevel.cancel_shielded_checkpoint()
        if not data:
            return None
        outcome = parser.receive_data(data)
    if outcome is None:
        with trio.move_on_after(config.handshake_timeout):
            while outcome is None:
                data = await _receive(stream)
                if not data:
                    return None
                outcome = parser.receive_data(data)
    if not isinstance(outcome, Refusal):
        return outcome
    _refused.log(
        "refused a handshake from %s: %d %s", _describe(peer), outcome.status, outcome.body
    )
    await _refuse(stream, http_response(outcome.status, outcome.body, outcome.headers))
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
            data = await stream.receive_some(_RECEIVE_SIZE)
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
        await _refuse(stream, answer, within=rooms.config.request_timeout)


async def _refuse(stream: trio.abc.Stream, response: bytes, *, within: float = 0.0) -> None:
    """Send ``response``, then drop what the client still sends until it closes.

    Closing a socket with unread input resets the connection, and the client would lose
    the response it has not read yet (RFC 9112 section 9.6): the server half-closes and
    reads on instead, for `_LINGER_SECONDS` and `_LINGER_BYTES` at most. Writing the
    response may take ``within`` seconds more (a route's answer can be large).
    """
    with trio.move_on_after(_LINGER_SECONDS + within):
        await stream.send_all(response)
        if isinstance(stream, trio.abc.HalfCloseableStream):
            await stream.send_eof()
        drained = 0
        with contextlib.suppress(trio.BrokenResourceError):  # it read the answer and left
            while drained < _LINGER_BYTES and (data := await stream.receive_some(_RECEIVE_SIZE)):
                drained += len(data)


def _read_now(stream: trio.abc.Stream) -> bytes | None:
    """What the socket has already received (empty at its end); None if nothing yet."""
    socket = socket_of(stream)
    if socket is None:
        return None
    try:
        return os.read(socket.fileno(), _RECEIVE_SIZE)
    except OSError:  # nothing yet, or broken: `receive_some` says which
        return None


async def _receive(stream: trio.abc.Stream) -> bytes:
    """``stream.receive_some()``; on a socket, its readiness wait and one ``os.read``.

    A client accepted before its request arrived (a third of them, when many connect at
    once) is read here: trio's layers around the read cost more than the read itself.
    What the socket raises (a reset) is the peer's doing, as `_peer_gone` knows.
    """
    socket = socket_of(stream)
    if socket is None:
        return bytes(await stream.receive_some(_RECEIVE_SIZE))
    while True:
        await trio.lowlevel.wait_readable(socket)
        try:
            return os.read(socket.fileno(), _RECEIVE_SIZE)
        except BlockingIOError:
            continue  # woken without data (spuriously)


async def _send_small(stream: trio.abc.Stream, data: bytes) -> None:
    """``stream.send_all(data)``, trying one ``os.write`` first (as `_send_now` does).

    A response of a few hundred bytes fits a fresh socket's buffer: trio's layers
    around the write cost more than the write itself.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    socket = socket_of(stream)
    if socket is not None:
        # Full, or broken (closed: fileno -1): `send_all` says which.
        with contextlib.suppress(OSError):
            data = data[os.write(socket.fileno(), data) :]
        if not data:
            return
    await stream.send_all(data)


async def _close(stream: trio.abc.Stream) -> None:
    try:
        await trio.aclose_forcefully(stream)
    except Exception as exc:
        # A stream with a protocol of its own (TLS) may fail to say goodbye to a peer
        # that is gone; raising here would reach the listener.
        if not _peer_gone(exc):
            _logger.exception("closing the connection from a client failed")


def _peer_gone(exc: BaseException) -> bool:
    """Whether ``exc`` says the peer or the network ended the connection (no bug here)."""
    if isinstance(exc, trio.BrokenResourceError):
        return True
    return isinstance(exc, OSError) and exc.errno in _PEER_ERRNOS


def _describe(peer: tuple[str, int] | None) -> str:
    return f"{peer[0]}:{peer[1]}" if peer is not None else "an unknown peer"


def _peer(stream: trio.abc.Stream) -> tuple[str, int] | None:
    socket = socket_of(stream)
    if socket is not None:
        address: object = socket.getpeername()
        if isinstance(address, tuple) and len(address) >= 2:  # pyright: ignore[reportUnknownArgumentType] - AF_INET/AF_INET6
            host, port = address[0], address[1]  # pyright: ignore[reportUnknownVariableType]
            if isinstance(host, str) and isinstance(port, int):
                return host, port
    return None


@final
class _StreamConnection:
    """`Connection` over a trio stream, after the handshake."""

    # One per connection, alive as long as it: slots keep an idle one small.
    __slots__ = (
        "_close_state",
        "_expired",
        "_heard",
        "_max_message_size",
        "_outbound",
        "_park_after",
        "_park_asked",
        "_parked_as",
        "_parser",
        "_pinged_at",
        "_pong",
        "_received",
        "_silent_since",
        "_socket",
        "_stream",
        "_waiting",
        "_watched",
        "parking",
        "watching",
    )

    def __init__(
        self, stream: trio.abc.Stream, config: RoomsConfig, *, received: bytes = b""
    ) -> None:
        self._stream = stream
        # Read with the handshake, parsed before the socket; None: the last read drained
        # the socket (see `receive`).
        self._received: bytes | None = received
        # Made at the first bytes from the client: with its event deque, close to a KiB
        # that a connection which stays silent never needs.
        self._parser: InboundParser | None = None
        self._max_message_size = config.max_message_size
        self._outbound: OutboundQueue | None = None
        #: The latest pong queued: while not yet framed, a new ping changes its payload.
        self._pong: Frame | None = None
        # Read and written without trio's stream layers (see `_read`, `_send_now`).
        self._socket = socket_of(stream)
        #: Our close frame: not yet sent, sent, or due and then the end of the TCP
        #: connection at once (`_FAIL`).
        self._close_state = _OPEN
        # Keepalive state, read and written by the server's `Keepalive` task.
        self._heard = False
        self._silent_since = trio.current_time()
        self._pinged_at: float | None = None
        self._expired = False
        # Parking (`park_after`): decided by the keepalive task too, for a connection
        # whose reader waits for the socket (`_waiting`) and whose session is quiet.
        self._park_after = config.park_after
        self._waiting = False
        self._park_asked = False
        #: The server's parked connections (None: this one never parks).
        self.parking: Parking | None = None
        #: The descriptor it parked with last, and as what (see `wake`).
        self._parked_as: tuple[int, _ParkedStream] | None = None
        #: The server's watched connections (None: this one is never watched).
        self.watching: Watching | None = None
        #: While watched: the descriptor it is watched with, and whom to call on input.
        self._watched: tuple[int, Callable[[], None]] | None = None

    def attach(self, outbound: OutboundQueue) -> None:
        self._outbound = outbound
        if self._socket is not None:
            outbound.direct = self._send_now

    def _send_now(self, frames: list[Frame]) -> bytes | None:
        """Write ``frames`` without waiting, the writer being idle: the unsent rest, or None.

        A closed socket's ``fileno()`` is -1 (the write fails), so a write after close
        can never reach a descriptor the kernel gave to another connection.
        """
        socket = self._socket
        if socket is None:
            return None
        if len(frames) == 1:
            frame = frames[0]
            data = frame.wire or wire_bytes(frame)  # framed already: a broadcast's
        else:
            data = b"".join([wire_bytes(frame) for frame in frames])
        try:
            sent = os.write(socket.fileno(), data)
        except OSError:  # full, or broken: the writer finds out which
            return None
        return data[sent:]

    def _answer(self, payload: bytes) -> None:
        """Pong a ping: with a pong still unsent, that one answers this ping instead.

        RFC 6455 5.5.3 allows answering only the latest ping, and it bounds what a client
        that floods pings and reads nothing makes the server hold: one pong, not one per
        ping (they are control frames, under no bound of the queue's). A pong is framed
        (its ``wire`` set) as it is written, and is left alone from then on.
        """
        pong = self._pong
        if pong is not None and pong.wire is None:
            pong.payload = payload
            return
        if self._outbound is not None:
            self._pong = Frame(PONG, payload)
            self._outbound.put_control(self._pong)

    async def receive(self) -> str | bytes:
        parser = self._parser
        events = parser.events if parser is not None else None
        socket = self._socket
        while True:
            if events:
                message = self._next_event(events)
                if message is not None:
                    return message
            data = self._received
            if data:
                self._received = b""
            elif socket is None:
                data = await self._read_stream()
            else:
                # Read here, not in a coroutine of its own (an idle connection waits in
                # this frame: a coroutine less is a quarter of a KiB per connection),
                # with ``os.read`` and trio's readiness wait, as trio's own ``recv``
                # does, without its three layers of wrappers per read.
                if data is None:
                    # The last read drained the socket: a read now would only fail
                    # (a syscall and an exception), the wait is the checkpoint.
                    self._received = b""
                else:
                    await trio.lowlevel.checkpoint_if_cancelled()
                    data = _read_ready(socket)
                    if data is not None:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                while data is None:
                    self._waiting = True
                    try:
                        await trio.lowlevel.wait_readable(socket)
                    except trio.ClosedResourceError:
                        # A park ask, or the socket's close (by the keepalive, after an
                        # ask that input overtook): closed, it cannot park.
                        if self._park_asked and socket.fileno() != -1:
                            # Woken by `_ask_to_park`, with nothing read: the session
                            # parks, or asks again. What a parser holds of a silent
                            # client is nothing.
                            self._park_asked = False
                            self._parser = None
                            raise ConnectionParked from None
                        data = b""  # closed by the keepalive
                    finally:
                        self._waiting = False
                    if data is None:
                        # Input woke the read in the turn the keepalive asked it to park
                        # (too late to be told): the ask is void, the next silence asks
                        # again.
                        self._park_asked = False
                        data = _read_ready(socket)  # None: woken without data
                if 0 < len(data) < _RECEIVE_SIZE:
                    # A short read took all the socket had (then): the next read waits
                    # first. Correct whatever arrives meanwhile: the wait sees it.
                    self._received = None
            if not data:
                reason = "keepalive timeout" if self._expired else "connection lost"
                raise ConnectionEnded(1006, reason, by_peer=True, send_close=False)
            self._heard = True
            if parser is None:
                parser = self._parser = InboundParser(self._max_message_size)
                events = parser.events
            # The common case, one whole small message per read, skips the event queue.
            message = parser.whole(data)
            if message is not None:
                return message
            parser.feed(data)

    def _next_event(self, events: deque[InboundEvent]) -> str | bytes | None:
        """The next message of ``events``, pings answered on the way; None once none is left.

        Raises:
            ConnectionEnded: The peer's close frame, or what it broke.
        """
        while events:
            event = events.popleft()
            if isinstance(event, _MESSAGES):
                return event
            if isinstance(event, Ping):
                self._answer(event.payload)
            elif isinstance(event, Closed):
                raise ConnectionEnded(event.code, event.reason, by_peer=True)
            else:
                # A broken frame, text that is not UTF-8 or a message too big on its
                # way: what follows cannot be trusted to reach the peer's close frame,
                # so ours ends the TCP connection too, at once (RFC 6455 7.1.7, "Fail
                # the WebSocket Connection"). Until then we are called again, to drain
                # what the peer still sends.
                if self._close_state == _OPEN:
                    self._close_state = _FAIL
                raise ConnectionEnded(event.code, event.reason, by_peer=False)
        return None

    def receive_nowait(self) -> str | bytes:
        """`receive`, without waiting, for a watched connection: `trio.WouldBlock` if
        nothing came.

        The socket is read at most once per message, and not at all after a read that
        drained it until the watcher says input came (`watched_input`): a read in vain
        costs a system call and an exception.
        """
        parser = self._parser
        while True:
            if parser is not None and parser.events:
                message = self._next_event(parser.events)
                if message is not None:
                    return message
            data = self._received
            if data:
                self._received = b""
            elif data is None or self._socket is None:
                raise trio.WouldBlock
            else:
                data = _read_ready(self._socket)
                if data is None:
                    self._received = None
                    raise trio.WouldBlock
                if 0 < len(data) < _RECEIVE_SIZE:
                    self._received = None  # (as in `receive`)
            if not data:
                reason = "keepalive timeout" if self._expired else "connection lost"
                raise ConnectionEnded(1006, reason, by_peer=True, send_close=False)
            self._heard = True
            if parser is None:
                parser = self._parser = InboundParser(self._max_message_size)
            message = parser.whole(data)
            if message is not None:
                return message
            parser.feed(data)

    def watch(self, readable: Callable[[], None]) -> Callable[[], str | bytes] | None:
        """Have the server's `Watching` call ``readable`` on input (see `Watchable`).

        None if the server watches nothing (`serve_stream`, shutting down) or the stream
        is no socket, or closed.
        """
        watching, socket = self.watching, self._socket
        if watching is None or socket is None or self._watched is not None:
            return None
        fd = socket.fileno()
        if fd == -1 or not watching.watch(fd, self):
            return None
        self._watched = (fd, readable)
        return self.receive_nowait

    def unwatch(self) -> None:
        """Stop the watch, by the descriptor it began with (the socket's may be -1 now)."""
        watched, self._watched = self._watched, None
        if watched is not None and self.watching is not None:
            self.watching.unwatch(watched[0], self)

    def watched_input(self) -> None:
        watched = self._watched
        if watched is not None:
            if self._received is None:
                self._received = b""  # input came since the read that drained the socket
            watched[1]()

    async def _close_watched(self) -> None:
        """Close the stream here (not after the session); a watcher is called back, and
        its read finds the end, as a reader waiting on the socket would be woken."""
        watched = self._watched
        self.unwatch()
        try:
            await _close(self._stream)
        finally:
            if watched is not None:
                self._received = b""  # read: the socket is closed, its end
                watched[1]()

    async def _read_stream(self) -> bytes:
        """The next bytes from a stream that is no socket; empty once it is gone."""
        try:
            return bytes(await self._stream.receive_some(_RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send(self, frames: list[Frame]) -> None:
        if len(frames) == 1:
            await self._stream.send_all(wire_bytes(frames[0]))
        else:
            await self._stream.send_all(b"".join([wire_bytes(frame) for frame in frames]))

    async def close(self, code: int, reason: str) -> None:
        state = self._close_state
        if state != _SENT:
            self._close_state = _SENT
            await self._stream.send_all(close_frame(code, reason))
            if state == _FAIL:
                await self._drop()

    async def _drop(self) -> None:
        """End the TCP connection now, our close frame sent: the peer's cannot be waited for.

        What the socket already holds is read first (up to a bound), so that the close
        is a FIN after our frame, not a reset that could lose it, unless more is coming.
        The reader, if it waits on the socket, wakes to find it closed.
        """
        socket = self._socket
        if socket is not None:
            drained = 0
            while drained < _LINGER_BYTES and (data := _read_ready(socket)):
                drained += len(data)
        await self._close_watched()

    def keepalive_check(self, now: float, interval: float, timeout: float) -> bool:
        if self._heard:
            self._heard = False
            self._silent_since = now
            self._pinged_at = None
            return False
        park_after = self._park_after
        if park_after is not None and self._waiting and now - self._silent_since >= park_after:
            self._ask_to_park()
        if self._pinged_at is None:
            if now - self._silent_since >= interval and self._outbound is not None:
                self._pinged_at = now
                self._outbound.put_control(Frame(PING, b""))
            return False
        return now - self._pinged_at >= timeout

    async def keepalive_expire(self) -> None:
        self._expired = True
        self.wake()  # a parked session runs on, to find its connection gone
        await self._close_watched()  # runs in the server's keepalive task: must not raise

    # ---------------------------------------------------------------- parking

    def _ask_to_park(self) -> None:
        """Have the read woken with nothing read, soon, for the session to park if quiet.

        Asked in the turn its server's `Parking` gives it (a few per turn), and only
        then if the connection is still silent and quiet (`_ask_now`).
        """
        parking = self.parking
        if parking is not None and not self._park_asked and self._quiet():
            self._park_asked = parking.ask(self._ask_now)

    def _ask_now(self) -> None:
        """The turn of the ask: wake the read if it still waits (input since voids the
        ask: see `receive`) and may park.

        Else the ask is void (the flag too, or no later sweep would ask again).
        """
        socket = self._socket
        if (
            self._park_asked
            and self._waiting
            and socket is not None
            and socket.fileno() != -1
            and self._quiet()
        ):
            trio.lowlevel.notify_closing(socket)
        else:
            self._park_asked = False

    def _quiet(self) -> bool:
        """Whether a park may be asked for: its reader can park (a session's, never a
        relay's: asked, it would read on, to be asked again every sweep), nothing but
        the read waits on the socket (the writer is idle, which `notify_closing` would
        wake too) and nothing received is left to parse.
        """
        outbound = self._outbound
        parser = self._parser
        return (
            self._socket is not None
            and self._close_state == _OPEN
            and not self._received
            and outbound is not None
            and outbound.parks
            and outbound.idle
            and (parser is None or parser.idle)
        )

    def park(self, sleeper: _ParkedStream) -> bool:
        """Leave the socket to the server's waiter; False if it cannot take it (or closed)."""
        socket = self._socket
        if socket is None or self.parking is None:
            return False
        fd = socket.fileno()
        if fd == -1 or not self.parking.park(fd, sleeper):
            return False
        self._parked_as = (fd, sleeper)
        return True

    def wake(self) -> None:
        """Start the task of the parked connection (none if it is not parked).

        By the descriptor it parked with: once closed, the socket's own is -1, and a
        parked session it could not find would never end.
        """
        parked, self._parked_as = self._parked_as, None
        if self.parking is not None and parked is not None:
            self.parking.wake(*parked)

    def parked_input(self) -> bool:
        """The parked socket has input: False if it was a lone pong (it stays parked).

        What else was read is the session's, parsed before the socket (``_received``).
        """
        socket = self._socket
        assert socket is not None
        try:
            data = os.read(socket.fileno(), _RECEIVE_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            return True  # reset: the session's read finds out
        self._heard = True
        if _is_pong(data):
            return False
        self._received = data
        return True


# `_StreamConnection._close_state`: our close frame not sent yet; due, and the TCP
# connection to end with it (the peer broke the frame stream); sent.
_OPEN, _FAIL, _SENT = 0, 1, 2

# What `receive` returns as it is (a tuple: ``str | bytes`` would be made per call).
_MESSAGES: Final = (str, bytes)


def _read_ready(socket: RawSocket) -> bytes | None:
    """What the socket has received (empty once reset or closed); None if nothing yet.

    Its own function: an exception caught in a coroutine gives the coroutine's frame an
    object of its own (a fifth of a KiB) for as long as it lives; caught here, it goes.
    A closed socket's ``fileno()`` is -1 (EBADF): empty too.
    """
    try:
        return os.read(socket.fileno(), _RECEIVE_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _is_pong(data: bytes) -> bool:
    """Whether ``data`` is exactly one masked pong frame from a client (ours answered)."""
    return (
        len(data) >= 6
        and data[0] == 0x8A  # FIN, no reserved bit, PONG
        and data[1] & 0x80 == 0x80  # masked, as a client's frame must be
        # A payload of at most 125 bytes, in the 7-bit form: the 16-bit one (126) is a
        # protocol error in a control frame, for the parser to answer with 1002.
        and data[1] & 0x7F <= 125
        and len(data) == 6 + (data[1] & 0x7F)
    )
