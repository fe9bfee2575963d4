"""``Session``: one connected client of a room, typed by its data and message unions."""

# The _core modules are one unit and share their protected members.
# pyright: reportPrivateUsage=false

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import attrs
import msgpack
import orjson
import trio
from typing_extensions import TypeVar as DefaultTypeVar

from .._errors import DecodeError, SessionClosedError
from .._message import Message
from ..codec import Codec, WireFormat, make_codec
from . import tokens
from .config import RoomsConfig
from .connection import Connection, ConnectionEnded
from .outbound import BINARY, TEXT, Frame, OutboundQueue, QueueOverflow
from .ratelimit import TokenBucket
from .request import ConnectRequest
from .stats import Counters
from .storage import SessionRecord, data_converter
from .typeargs import is_concrete, resolve_type_args, union_members

if TYPE_CHECKING:
    from .room import Room

__all__ = ["Session"]

_logger = logging.getLogger("trio_rooms")

DataT = TypeVar("DataT")
ServerMsgT = TypeVar("ServerMsgT", bound=Message)
ClientMsgT = TypeVar("ClientMsgT", bound=Message)
#: The session's own room class, for ``self.room``; a session that does not name it
#: sees a room of sessions with its own data and messages.
RoomT_co = DefaultTypeVar(
    "RoomT_co",
    bound="Room[Any]",
    default="Room[Session[DataT, ServerMsgT, ClientMsgT]]",
    covariant=True,
)

#: Largest write the session's writer hands to the transport at once.
_WRITE_BATCH_BYTES = 256 * 1024

#: Close codes an application may send (RFC 6455 section 7.4, and IANA's registry:
#: 1012 service restart, 1013 try again later, 1014 bad gateway).
_SENDABLE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

_NO_DATA: Any = object()

#: The close code of a connection whose session was resumed on another connection.
SESSION_TAKEN_OVER = 4001

_DEFAULT_CONFIG = RoomsConfig()


def _message_classes(tp: object, owner: str, role: str) -> tuple[type[Message], ...]:
    members = union_members(tp)
    for member in members:
        if not (isinstance(member, type) and issubclass(member, Message) and attrs.has(member)):
            raise TypeError(
                f"{owner}: {role} messages must be attrs classes deriving from "
                f"trio_rooms.Message, got {member!r}"
            )
    return cast("tuple[type[Message], ...]", members)


@cache
def session_codec(
    classes: tuple[type[Message], ...], wire: WireFormat, camel_case: bool, forbid_extra_keys: bool
) -> Codec[Message]:
    return make_codec(wire, *classes, camel_case=camel_case, forbid_extra_keys=forbid_extra_keys)


def _library_frame(wire: WireFormat, content: dict[str, object]) -> Frame:
    # Library frames carry no "type", so they never collide with user messages.
    if wire == "json":
        return Frame(TEXT, orjson.dumps(content))
    return Frame(BINARY, msgpack.packb(content))


class Session(ABC, Generic[DataT, ServerMsgT, ClientMsgT, RoomT_co]):
    """One client connected to a room.

    Subclass it with concrete type arguments; the message unions are read from them
    when the class is created. The fourth, optional, is the room class the session
    runs in, so that ``self.room`` has that room's own attributes::

        class ChatSession(Session[ChatData, ServerMsg, ClientMsg, "ChatRoom"]):
            async def create_data(self, request: ConnectRequest) -> ChatData:
                return ChatData(name=request.query.get("name", "anon"))

            async def on_message(self, message: ClientMsg) -> None:
                match message:
                    case SendChat(text=text):
                        self.broadcast(Chat(author=self.data.name, text=text))
                    case _:
                        assert_never(message)

    The library creates sessions (subclasses are constructed with no arguments). A
    session's messages are handled one at a time, in the order they arrived; sessions
    of one room run concurrently.
    """

    _server_classes: ClassVar[tuple[type[Message], ...] | None] = None
    _client_classes: ClassVar[tuple[type[Message], ...] | None] = None
    _data_type: ClassVar[object] = None

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        args = resolve_type_args(cls, Session)
        if args is None or len(args) not in (3, 4):
            raise TypeError(
                f"{cls.__qualname__} must subclass Session[Data, ServerMsg, ClientMsg] "
                "(or Session[Data, ServerMsg, ClientMsg, YourRoom]) with its type arguments"
            )
        if not is_concrete(args[1:3]):
            return  # a generic intermediate class; its subclasses bind the messages
        cls._data_type = args[0]
        cls._server_classes = _message_classes(args[1], cls.__qualname__, "server")
        cls._client_classes = _message_classes(args[2], cls.__qualname__, "client")

    @classmethod
    def message_classes(cls) -> tuple[tuple[type[Message], ...], tuple[type[Message], ...]]:
        """The client and the server message classes, read from the type arguments.

        Raises:
            TypeError: the class is generic (its messages are not bound yet).
        """
        if cls._client_classes is None or cls._server_classes is None:
            raise TypeError(f"{cls.__qualname__} is generic: its messages are not bound")
        return cls._client_classes, cls._server_classes

    def __init__(self) -> None:
        self._id = secrets.token_urlsafe(18)
        self._data: DataT = _NO_DATA
        self._room: Room[Any] | None = None
        self._request: ConnectRequest | None = None
        self._format: WireFormat = "json"
        self._encode: Callable[[Message], bytes] = _unbound_encode
        self._decode: Callable[[str | bytes], Message] = _unbound_decode
        self._outbound = OutboundQueue(1, 1)
        self._counters = Counters()  # the rooms' own, once attached
        self._close_code: int | None = None
        self._close_reason = ""
        self._send_close = True
        self._closed_by_peer = False
        self._admitted = False
        self._token_hash = b""  # set when the client asked for a resumable session
        self._superseded = False  # resumed on another connection: its state is not ours
        self._invalid_in_a_row = 0
        self._reader_scope = trio.CancelScope()
        self._writer_scope = trio.CancelScope()
        self._handler_scope = trio.CancelScope()
        self._close_sent = trio.Event()
        self._ended = trio.Event()

    # ----------------------------------------------------------------- attributes

    @property
    def id(self) -> str:
        """This session's id: unguessable, unique, kept across resumes."""
        return self._id

    @property
    def data(self) -> DataT:
        """The per-session data `create_data` returned."""
        if self._data is _NO_DATA:
            raise RuntimeError("Session.data is not set until create_data() has returned")
        return self._data

    @data.setter
    def data(self, value: DataT) -> None:
        self._data = value

    @property
    def room(self) -> RoomT_co:
        """The room this session belongs to, typed by the session's fourth type argument."""
        if self._room is None:
            raise RuntimeError("this session has not been attached to a room")
        return cast("RoomT_co", self._room)

    @property
    def request(self) -> ConnectRequest:
        """The handshake request that opened this connection."""
        if self._request is None:
            raise RuntimeError("this session has not been attached to a connection")
        return self._request

    @property
    def format(self) -> WireFormat:
        """The wire format of this connection: ``"json"`` (text frames) or ``"msgpack"``."""
        return self._format

    @property
    def closed(self) -> bool:
        """True once the session has started closing; sends are then dropped."""
        return self._close_code is not None

    # ---------------------------------------------------------------------- hooks

    @classmethod
    async def authorize(cls, request: ConnectRequest) -> None:
        """Decide whether a client may connect, before its upgrade; raise `Reject` if not.

        Runs before the server answers 101, before the room is created (when the
        factory given to `open_rooms` is the room class or a ``functools.partial`` of
        it; with another callable the room must exist to know its session class, so it
        is created first). A refused client gets HTTP ``Reject.status`` (401, 403...)
        and no session exists. It must return within ``handshake_timeout`` (else 503);
        another exception answers 500. By default every client is let in.
        """

    @abstractmethod
    async def create_data(self, request: ConnectRequest) -> DataT:
        """Make the data of a new session; runs once per fresh connection.

        An exception here closes the connection with 1011 and the session is never
        admitted (`on_close` does not run).
        """

    async def on_resume(self) -> None:
        """Run when a client resumed this session with its token (instead of `create_data`).

        ``id`` and ``data`` are the session's, as last stored; `on_connect` follows.
        """

    async def on_connect(self) -> None:
        """Run once the session is admitted to its room (after `create_data`).

        The session is already in ``room.sessions``, so a broadcast from here reaches
        it too unless ``exclude_self=True``.
        """

    @abstractmethod
    async def on_message(self, message: ClientMsgT) -> None:
        """Handle one client message; the next one waits until this returns."""

    async def on_bytes(self, data: bytes) -> None:
        """Handle a binary frame on a JSON session; by default it is invalid input.

        Not overridden, a binary frame goes to `on_invalid` and counts towards
        ``RoomsConfig.max_invalid_in_a_row``.
        """
        await self.on_invalid(DecodeError("binary frames are not accepted by this session"))

    async def on_invalid(self, error: DecodeError) -> None:
        """Handle a frame that did not decode; by default reply ``{"error": reason}``.

        The connection stays open.
        """
        self._enqueue(_library_frame(self._format, {"error": str(error)}))

    async def on_error(self, error: Exception) -> None:
        """Handle an exception raised by another hook; by default log it.

        The connection stays open.
        """
        _logger.error(
            "unhandled error in session %s of room %r",
            self._id,
            self._room.name if self._room is not None else None,
            exc_info=error,
        )

    async def on_close(self, code: int, reason: str) -> None:
        """Run exactly once when an admitted session ends, whatever ended it.

        ``code`` is the close code the peer sent, the one the server sent, or 1006 when
        the connection was lost. The session is no longer in ``room.sessions``, so a
        broadcast from here reaches only the others.
        """

    # -------------------------------------------------------------------- actions

    def send(self, message: ServerMsgT) -> None:
        """Queue ``message`` for this client.

        Never blocks. A client that does not keep up is closed with 1008 (slow consumer:
        see ``RoomsConfig.slow_consumer_timeout``). After the session started closing,
        the message is dropped.
        """
        if self._close_code is None:
            self._enqueue(Frame(TEXT if self._format == "json" else BINARY, self._encode(message)))
        else:
            self._counters.dropped += 1

    def send_bytes(self, data: bytes) -> None:
        """Queue a binary frame carrying ``data`` as it is; never blocks, like `send`."""
        if self._close_code is None:
            self._enqueue(Frame(BINARY, bytes(data)))
        else:
            self._counters.dropped += 1

    def broadcast(self, message: ServerMsgT, *, exclude_self: bool = False) -> None:
        """Queue ``message`` for every session of the room (this one too, unless ``exclude_self``).

        Never blocks: see `Room.broadcast`.
        """
        self.room.broadcast(message, exclude=(self._id,) if exclude_self else ())

    async def update(self) -> None:
        """Persist ``data``; returns once the storage has durably committed it.

        Raises:
            StorageError: the write failed; the stored data is what it was before.
            SessionClosedError: the session was resumed by another connection (on this
                node or another): nothing was written, and the session is closed with
                4001 "session resumed elsewhere".
        """
        room = self._room
        if room is None or not self._admitted:
            raise RuntimeError("update() needs an admitted session")
        if self._superseded or not await self._write_record(room):
            raise SessionClosedError(f"session {self._id} was resumed on another connection")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close this session: flush what is queued, then send the close frame.

        Returns once the close frame is written (at most ``RoomsConfig.close_timeout``);
        `on_close` runs after the current handler returns. Closing a closed session does
        nothing.

        Raises:
            ValueError: ``code`` is not one an endpoint may send, or ``reason`` is longer
                than 123 bytes.
        """
        if not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
            raise ValueError(
                f"close code {code} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999"
            )
        if len(reason.encode()) > 123:
            raise ValueError("a close reason is at most 123 bytes of UTF-8")
        self._begin_close(code, reason)
        await self._close_sent.wait()

    # ------------------------------------------------------------------- internals

    def _attach(
        self, room: Room[Any], request: ConnectRequest, wire: WireFormat, connection: Connection
    ) -> None:
        cls = type(self)
        if cls._server_classes is None or cls._client_classes is None:
            raise TypeError(f"{cls.__qualname__} is generic: subclass it with concrete messages")
        config = room._config
        self._room = room
        self._counters = room._counters
        self._request = request
        self._set_format(room, wire)
        self._outbound = OutboundQueue(
            config.outbound_max_messages, config.outbound_max_bytes, config.slow_consumer_timeout
        )
        connection.attach(self._outbound)

    def _set_format(self, room: Room[Any], wire: WireFormat) -> None:
        client_classes, server_classes = self.message_classes()
        config = room._config
        options = (wire, config.camel_case, config.forbid_extra_keys)
        self._format = wire
        self._encode = session_codec(server_classes, *options).encode
        self._decode = session_codec(client_classes, *options).decode

    def _enqueue(self, frame: Frame) -> None:
        try:
            if self._outbound.put_now(frame):
                self._counters.messages_out += 1
            else:
                self._counters.dropped += 1
        except QueueOverflow:
            self._overflow()

    def _overflow(self) -> None:
        """The outbound queue is past its bounds: close with 1008, dropping what was queued."""
        self._counters.dropped += 1
        self._begin_close(1008, "slow consumer", discard=True)

    def _begin_close(
        self,
        code: int,
        reason: str,
        *,
        send_close: bool = True,
        discard: bool = False,
        by_peer: bool = False,
    ) -> None:
        """Start ending the session; only the first call decides the code."""
        outbound = self._outbound
        if self._close_code is not None:
            if not send_close:  # the transport is gone now: stop trying to write
                self._send_close = False
                outbound.clear()
                outbound.close()
                self._writer_scope.cancel()
            return
        self._close_code = code
        self._close_reason = reason
        self._send_close = send_close
        self._closed_by_peer = by_peer
        if self._room is not None:
            self._room._remove(self)
        if discard or not send_close:
            outbound.clear()
        outbound.close()
        timeout = self._room._config.close_timeout if self._room is not None else 0.0
        deadline = trio.current_time() + timeout
        self._writer_scope.deadline = deadline
        if not by_peer:
            # We initiated: give the peer until the deadline to answer our close frame,
            # and the running handler until then to return.
            self._reader_scope.deadline = deadline
            self._handler_scope.deadline = deadline

    async def _run(self, connection: Connection, room: Room[Any]) -> None:
        """Serve this session until it ends; runs in the room's nursery."""
        config = room._config
        inbox_send, inbox_receive = trio.open_memory_channel[str | bytes](
            config.inbound_max_messages
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop, connection)
                nursery.start_soon(self._read_loop, connection, inbox_send)
                async with inbox_receive:
                    if await self._admit(room):
                        try:
                            with self._handler_scope:
                                await self._handle_loop(inbox_receive)
                        finally:
                            await self._finish()
        except Exception:
            # A transport or library failure ends this session only, never the room.
            _logger.exception("session %s of room %r failed", self._id, room.name)
            self._begin_close(1011, "internal error", send_close=False)
        finally:
            self._close_sent.set()
            self._ended.set()
            room._counters.closes[self._close_code or 1006] += 1
            room._counters.changed()

    async def _admit(self, room: Room[Any]) -> bool:
        """Resume or create the session, persist it, and add it to the room."""
        resume = self.request.query.get("resume")  # None: not resumable; "": new; else a token
        try:
            issued = await self._resume(room, resume) if resume else None
            resumed = issued is not None
            if not resumed:
                self._data = await self.create_data(self.request)
                if resume is not None:
                    issued = tokens.issue(self._id)
                    self._token_hash = issued.token_hash
                await room._storage.save_session(self._record())
        except Exception:
            _logger.exception("session setup failed in room %r", room.name)
            self._begin_close(1011, "session setup failed")
            return False
        if self._close_code is not None:
            return False  # the peer left during setup
        if room._stopping:
            self._begin_close(1001, "server shutting down")
            return False
        if issued is not None:
            # The first frame a resumable client gets, before anything the room sends.
            info = {"id": self._id, "token": issued.token, "resumed": resumed}
            self._enqueue(_library_frame(self._format, {"$session": info}))
        room._add(self)
        self._admitted = True
        try:
            if resumed:
                await self.on_resume()
            await self.on_connect()
        except Exception as exc:
            await self._report(exc)
            self._begin_close(1011, "session setup failed")
        return True

    async def _resume(self, room: Room[Any], token: str) -> tokens.IssuedToken | None:
        """Take over the session ``token`` names and spend the token; None if it is not valid.

        Of connections racing with one token, exactly one gets the session: the token is
        checked here (in constant time), then spent by the storage's compare-and-set on
        its hash, which only one of them wins; the others get None (a fresh session).
        """
        parts = tokens.split(token)
        if parts is None:
            return None
        session_id, secret = parts
        storage = room._storage
        record = await storage.load_session(room.name, session_id)
        if record is None or not tokens.verify(secret, record.token_hash, record.expires_at):
            return None
        issued = tokens.issue(session_id)
        claimed = await storage.claim_session(
            room.name,
            session_id,
            token_hash=record.token_hash,
            new_token_hash=issued.token_hash,
            expires_at=self._expires_at(room),
        )
        if claimed is None:
            return None  # another connection spent it first
        # The data as it was when the token was spent: later writes of the session it
        # came from are refused, since they expect the hash this one just replaced.
        self._data = self._load_data(claimed.data)
        self._id = session_id
        self._token_hash = issued.token_hash
        if claimed.wire != self._format and claimed.wire in ("json", "msgpack"):
            self._set_format(room, "json" if claimed.wire == "json" else "msgpack")
        previous = room._sessions.get(session_id)
        if previous is not None:  # still connected here: end it now, not at its next write
            previous._take_over()
        return issued

    def _take_over(self) -> None:
        """This session was resumed on another connection: its record is not ours anymore."""
        self._superseded = True
        self._begin_close(SESSION_TAKEN_OVER, "session resumed elsewhere")

    async def _write_record(self, room: Room[Any]) -> bool:
        """Store this session's record; False (and closing with 4001) if it was taken over.

        A resumable session writes only while its record holds its own token hash, so a
        session resumed elsewhere, even on another node, cannot overwrite what the
        resumer stored, nor make its spent token valid again.
        """
        record = self._record()
        if not self._token_hash:
            await room._storage.save_session(record)
        elif not await room._storage.replace_session(record, expected_token_hash=self._token_hash):
            self._take_over()
            return False
        return True

    def _record(self) -> SessionRecord:
        room = self._room
        assert room is not None
        return SessionRecord(
            room=room.name,
            session_id=self._id,
            data=self._dump_data(),
            wire=self._format,
            token_hash=self._token_hash,
            expires_at=self._expires_at(room),
        )

    @staticmethod
    def _expires_at(room: Room[Any]) -> float:
        return time.time() + room._config.resume_window

    def _dump_data(self) -> bytes:
        return data_converter.dumps(self._data, unstructure_as=type(self)._data_type)

    def _load_data(self, raw: bytes) -> DataT:
        data_type = type(self)._data_type
        if data_type is None or data_type is type(None):
            return cast("DataT", None)
        return cast("DataT", data_converter.loads(raw, cast("type[Any]", data_type)))

    async def _handle_loop(self, inbox: trio.MemoryReceiveChannel[str | bytes]) -> None:
        while True:
            try:
                # Take what is already queued without yielding; wait only when empty.
                item = inbox.receive_nowait()
            except trio.WouldBlock:
                try:
                    item = await inbox.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            if self._close_code is not None and not self._closed_by_peer:
                continue  # we are closing: what the peer still sends is not handled
            # The first reply to this message may go straight to the socket.
            self._outbound.allow_direct()
            try:
                await self._dispatch(item)
            except Exception as exc:
                await self._report(exc)

    async def _dispatch(self, item: str | bytes) -> None:
        """Hand one received frame to the hook it belongs to."""
        if isinstance(item, bytes) and self._format == "json":
            # The default on_bytes is invalid input, and counts as such.
            if type(self).on_bytes is not Session.on_bytes:  # pyright: ignore[reportUnknownMemberType]
                self._invalid_in_a_row = 0
                await self.on_bytes(item)
                return
            error = DecodeError("binary frames are not accepted by this session")
        elif isinstance(item, str) and self._format == "msgpack":
            error = DecodeError("expected a binary (msgpack) frame, got a text frame")
        else:
            try:
                message = cast("ClientMsgT", self._decode(item))
            except DecodeError as exc:
                error = exc
            else:
                self._invalid_in_a_row = 0
                await self.on_message(message)
                return
        self._counters.invalid += 1
        self._invalid_in_a_row += 1
        if self._invalid_in_a_row >= self._room_config().max_invalid_in_a_row:
            self._begin_close(1008, "too many invalid messages")
            return
        await self.on_invalid(error)

    def _room_config(self) -> RoomsConfig:
        return self._room._config if self._room is not None else _DEFAULT_CONFIG

    async def _guarded(self, hook: Awaitable[object]) -> None:
        try:
            await hook
        except Exception as exc:
            await self._report(exc)

    async def _report(self, error: Exception) -> None:
        self._counters.errors += 1
        try:
            await self.on_error(error)
        except Exception:
            _logger.exception("on_error raised in session %s", self._id)

    async def _finish(self) -> None:
        if self._close_code is None:  # cancelled from outside (hard shutdown)
            self._begin_close(1006, "cancelled", send_close=False)
        room = self._room
        assert room is not None
        code = self._close_code
        assert code is not None
        timeout = room._config.close_timeout
        with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout):
            await self._guarded(self.on_close(code, self._close_reason))
        # A deadline of its own: a slow on_close must not leave the record behind.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout):
            await self._guarded(self._persist_at_close(room))

    async def _persist_at_close(self, room: Room[Any]) -> None:
        if self._superseded:
            return  # its record belongs to the connection that resumed it
        if self._token_hash:
            # Resumable: keep the latest data and restart the resume window from now,
            # unless it was resumed elsewhere meanwhile (then nothing is written).
            await self._write_record(room)
        else:
            await room._storage.delete_session(room.name, self._id)

    async def _read_loop(
        self, connection: Connection, inbox: trio.MemorySendChannel[str | bytes]
    ) -> None:
        counters = self._counters
        config = self._room_config()
        bucket = None
        if config.rate_limit is not None:
            bucket = TokenBucket(config.rate_limit, config.rate_limit_burst, trio.current_time())
        with self._reader_scope:
            async with inbox:
                try:
                    while True:
                        message = await connection.receive()
                        counters.messages_in += 1
                        if bucket is not None and not bucket.take(trio.current_time()):
                            self._over_rate_limit(bucket.excess, config)
                            continue
                        try:
                            # Hand over without a trip through the scheduler unless the
                            # inbox is full: that is what keeps broadcasts batched.
                            inbox.send_nowait(message)
                        except trio.WouldBlock:
                            await inbox.send(message)
                        except trio.BrokenResourceError:
                            # No handler (setup failed): keep reading until the close
                            # handshake ends, dropping what arrives.
                            counters.dropped += 1
                except ConnectionEnded as ended:
                    self._begin_close(
                        ended.code, ended.reason, send_close=ended.send_close, by_peer=ended.by_peer
                    )
                    if not ended.by_peer:
                        await self._drain(connection)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._begin_close(1006, "connection lost", send_close=False, by_peer=True)
        if self._close_code is None:  # our deadline cut the peer off
            self._begin_close(1006, "close timeout", send_close=False, by_peer=True)

    def _over_rate_limit(self, excess: int, config: RoomsConfig) -> None:
        """A message over the rate limit: dropped, answered, and counted against the client."""
        if self._close_code is not None:
            return  # closing already: what still arrives is dropped anyway
        self._counters.rate_limited += 1
        if excess > config.rate_limit_excess:
            self._begin_close(1008, "rate limit exceeded")
        else:
            limit = f"at most {config.rate_limit:g} messages per second"
            self._enqueue(_library_frame(self._format, {"error": f"rate limit exceeded: {limit}"}))

    async def _drain(self, connection: Connection) -> None:
        # After closing for a protocol violation, read (and drop) until the peer's close
        # frame: closing a socket with unread input resets it, and the peer would lose
        # our close frame. The reader's deadline bounds this.
        with contextlib.suppress(
            ConnectionEnded, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            while True:
                await connection.receive()

    async def _write_loop(self, connection: Connection) -> None:
        outbound = self._outbound
        with self._writer_scope:
            try:
                while batch := await outbound.get_batch(_WRITE_BATCH_BYTES):
                    await connection.send(batch)
                if self._send_close:
                    code = self._close_code
                    assert code is not None
                    # Echo 1005 ("no code") as a plain normal closure.
                    await connection.close(
                        1000 if code in (1005, 1006) else code, self._close_reason
                    )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._begin_close(1006, "connection lost", send_close=False, by_peer=True)
        self._close_sent.set()
        if self._close_code is None:
            self._begin_close(1006, "write timeout", send_close=False)
        if self._room is not None:
            # Nothing more will be written: let the reader go if the peer never answers.
            timeout = self._room._config.close_timeout
            self._reader_scope.deadline = min(
                self._reader_scope.deadline, trio.current_time() + timeout
            )


def _unbound_encode(message: Message) -> bytes:
    raise RuntimeError("this session has not been attached to a connection")


def _unbound_decode(data: str | bytes) -> Message:
    raise RuntimeError("this session has not been attached to a connection")
