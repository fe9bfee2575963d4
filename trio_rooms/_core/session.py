"""``Session``: one connected client of a room, typed by its data and message unions.

This is the user's façade: hooks to override, actions to call, typed attributes. What
runs a session (its loops, queue, codecs and close state) is its `SessionRunner`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableSet, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, TypeVarTuple, cast

import attrs
from typing_extensions import TypeVar as DefaultTypeVar

from .._delivery import DISCONNECT, Coalesce, DeliveryPolicy, Disconnect, frame_policy
from .._errors import DecodeError, SessionClosedError
from .._message import Message
from .._rpc import Request, handled_request
from ..codec import WireFormat
from .gate import Exclusive, Unlocked
from .outbound import BINARY, TEXT
from .presence import Presence
from .presence_board import PresenceBoard
from .request import ConnectRequest
from .room_storage import RoomStorage
from .runner import NO_DATA, Phase, SessionRunner
from .typeargs import is_concrete, resolve_type_args, union_members

__all__ = ["PresenceRoom", "Session", "SessionRoom", "runner_of"]

_logger = logging.getLogger("trio_rooms")

DataT = TypeVar("DataT")
ServerMsgT = TypeVar("ServerMsgT", bound=Message)
ClientMsgT = TypeVar("ClientMsgT", bound=Message)
SessionT_co = TypeVar("SessionT_co", covariant=True)
MetaT = TypeVar("MetaT")
ServerMsgT_contra = TypeVar("ServerMsgT_contra", bound=Message, contravariant=True)
PosArgsT = TypeVarTuple("PosArgsT")


class SessionRoom(Protocol[SessionT_co, ServerMsgT_contra]):
    """The room as any session sees it: what every `Room` offers its sessions.

    It is what ``Session.room`` is for a session that does not name its room class;
    one that does (``Session[Data, ServerMsg, ClientMsg, "ChatRoom"]``) sees its own
    class instead, with its own attributes.
    """

    @property
    def name(self) -> str:
        """The room's name."""
        ...

    @property
    def sessions(self) -> Mapping[str, SessionT_co]:
        """The admitted sessions by id."""
        ...

    @property
    def storage(self) -> RoomStorage:
        """The room's durable key-value state."""
        ...

    def broadcast(
        self,
        message: ServerMsgT_contra,
        *,
        exclude: Iterable[Session[Any, Any, Any, Any] | str] = (),
        tags: Iterable[str] | None = None,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        """Queue ``message`` for every session of the room except those in ``exclude``."""
        ...

    def sessions_tagged(self, tag: str) -> Sequence[SessionT_co]:
        """The sessions of the room on this node that have the tag ``tag``."""
        ...

    async def members(self) -> Sequence[str]:
        """The ids of the room's sessions on every node, sorted."""
        ...

    def start_soon(self, fn: Callable[[*PosArgsT], Awaitable[object]], *args: *PosArgsT) -> None:
        """Run ``fn(*args)`` in the room's nursery."""
        ...

    def exclusive(self) -> Exclusive:
        """Hold the room's gate for a block."""
        ...

    def unlocked(self) -> Unlocked:
        """Let the room's other events run during a block of a hook."""
        ...

    async def set_alarm(
        self, name: str, *, at: datetime | float | None = None, delay: float | None = None
    ) -> None:
        """Set the room's durable alarm ``name`` (see `Room.set_alarm`)."""
        ...

    async def cancel_alarm(self, name: str) -> None:
        """Cancel the room's alarm ``name``."""
        ...

    def alarms(self) -> dict[str, datetime]:
        """The room's alarms, earliest first: name -> when it falls due (UTC)."""
        ...


class PresenceRoom(SessionRoom[Any, Any], Protocol[MetaT]):
    """A room class that declares ``presence = trio_rooms.Presence(Meta)``.

    A session whose fourth type argument is such a room may call
    `Session.join_presence` with a ``Meta`` (pyright checks it); read on the room,
    ``presence`` is its `RoomPresence`.
    """

    #: The declaration (a descriptor): ``room.presence`` is a ``RoomPresence[Meta]``.
    presence: Presence[MetaT]


#: The session's own room class, for ``self.room``; a session that does not name it
#: sees a `SessionRoom` of sessions with its own data and messages.
RoomT_co = DefaultTypeVar(
    "RoomT_co",
    bound="SessionRoom[Any, Any]",
    default="SessionRoom[Session[DataT, ServerMsgT, ClientMsgT], ServerMsgT]",
    covariant=True,
)

#: Close codes an application may send (RFC 6455 section 7.4, and IANA's registry:
#: 1012 service restart, 1013 try again later, 1014 bad gateway).
_SENDABLE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def _message_classes(tp: object, owner: str, role: str) -> tuple[type[Message], ...]:
    members = union_members(tp)
    for member in members:
        if not (isinstance(member, type) and issubclass(member, Message) and attrs.has(member)):
            raise TypeError(
                f"{owner}: {role} messages must be attrs classes deriving from "
                f"trio_rooms.Message, got {member!r}"
            )
    return cast("tuple[type[Message], ...]", members)


def _check_delivery(message_class: type[Message], owner: str) -> None:
    """A `Coalesce` declared by a server message class must name its attributes."""
    delivery = message_class.delivery
    if isinstance(delivery, Coalesce):
        for name in delivery.names:
            if name not in attrs.fields_dict(message_class) and not hasattr(message_class, name):
                raise TypeError(
                    f"{owner}: {message_class.__qualname__}.delivery coalesces by {name!r}, "
                    "which is not one of its fields or attributes"
                )


#: A `replies` handler as a class holds it: called with the session and the request.
Responder = Callable[[Any, Any], Awaitable[Message]]


def _responders(
    cls: type, client: tuple[type[Message], ...], server: tuple[type[Message], ...]
) -> dict[type[Request[Any]], Responder]:
    """The class's request handlers by request class, checked against its messages."""
    names: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        names.update(vars(klass))  # a subclass's attribute hides its base's
    found: dict[type[Request[Any]], tuple[str, Responder]] = {}
    for name, attribute in names.items():
        request = handled_request(attribute)
        if request is None:
            continue
        owner = f"{cls.__qualname__}.{name}"
        if request in found:
            raise TypeError(
                f"{owner} and {cls.__qualname__}.{found[request][0]} both answer "
                f"{request.__qualname__}"
            )
        if request not in client:
            raise TypeError(f"{owner} answers {request.__qualname__}, not a client message")
        for reply in request.reply_classes:
            if reply not in server:
                raise TypeError(
                    f"{owner}: the reply {reply.__qualname__} of {request.__qualname__} "
                    "is not one of the server messages"
                )
        found[request] = (name, cast("Responder", attribute))
    return {request: responder for request, (_, responder) in found.items()}


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
    of one room run concurrently. A client's requests (`trio_rooms.Request`) are
    answered by methods decorated with `trio_rooms.replies`.
    """

    _server_classes: ClassVar[tuple[type[Message], ...] | None] = None
    _client_classes: ClassVar[tuple[type[Message], ...] | None] = None
    _data_type: ClassVar[object] = None
    _responders: ClassVar[Mapping[type[Request[Any]], Responder]] = {}

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
        for server_class in cls._server_classes:
            _check_delivery(server_class, cls.__qualname__)
        cls._client_classes = _message_classes(args[2], cls.__qualname__, "client")
        cls._responders = _responders(cls, cls._client_classes, cls._server_classes)

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
        cls = type(self)
        self._runner = SessionRunner(
            self,
            data_type=cls._data_type,
            takes_bytes=cls.on_bytes is not Session.on_bytes,  # pyright: ignore[reportUnknownMemberType]
            responders=cls._responders,
        )

    # ----------------------------------------------------------------- attributes

    @property
    def id(self) -> str:
        """This session's id: unguessable, unique, kept across resumes."""
        return self._runner.id

    @property
    def data(self) -> DataT:
        """The per-session data `create_data` returned."""
        data = self._runner.data
        if data is NO_DATA:
            raise RuntimeError("Session.data is not set until create_data() has returned")
        # Not `cast`: a call per read. It is what create_data returned, a DataT.
        return data  # pyright: ignore[reportReturnType]

    @data.setter
    def data(self, value: DataT) -> None:
        self._runner.data = value

    @property
    def room(self) -> RoomT_co:
        """The room this session belongs to, typed by the session's fourth type argument."""
        side = self._runner.room_side
        if side is None:
            raise RuntimeError("this session has not been attached to a room")
        # Not `cast`: a call per read on every hook's path. The runner holds the façade
        # as an object; it is the room class the fourth type argument names.
        return side.room  # pyright: ignore[reportReturnType]

    @property
    def request(self) -> ConnectRequest:
        """The handshake request that opened this connection."""
        request = self._runner.request
        if request is None:
            raise RuntimeError("this session has not been attached to a connection")
        return request

    @property
    def format(self) -> WireFormat:
        """The wire format of this connection: ``"json"`` (text frames) or ``"msgpack"``."""
        return self._runner.format

    @property
    def replayed(self) -> int:
        """How many missed frames the resume of this connection replayed to its client.

        Set before `on_resume` runs; 0 for a fresh session, a client that does not count
        frames, a room without replay, or a resync (see `on_resync`).
        """
        return self._runner.replayed

    @property
    def tags(self) -> MutableSet[str]:
        """This session's tags: a set of str its room can broadcast to (``tags=``).

        Set them in `on_connect` or later (``self.tags.add("admins")``, or
        ``self.tags = {"team:red"}``). Bounded by ``RoomsConfig.max_tags_per_session``
        and ``max_tag_length``: past them (or for an empty tag) `ValueError`, and the
        tags are as they were. They live with the connection: not stored, so a resumed
        session starts without tags and its `on_connect` sets them again (from
        ``data``, say).
        """
        return self._runner.tags

    @tags.setter
    def tags(self, tags: Iterable[str]) -> None:
        self._runner.tags.replace(tags)

    @property
    def closed(self) -> bool:
        """True once the session has started closing; sends then no longer reach this
        connection (see `send`)."""
        return self._runner.closing is not None

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

        ``id`` and ``data`` are the session's, as last stored; the frames its client
        missed are already queued (`replayed` says how many); `on_connect` follows.
        """

    async def on_resync(self) -> None:
        """Run, before `on_resume`, when the frames the client missed cannot be replayed.

        The room's replay log no longer reaches back to what the client had seen (see
        ``Room.replay``), so it got ``{"$resync": {"reason": ...}}`` instead; send it a
        snapshot of what it needs from here. Nothing is sent by default.
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
        await self.on_invalid(
            DecodeError("binary frames are not accepted by this session", frame=data)
        )

    async def on_invalid(self, error: DecodeError) -> None:
        """Handle a frame that did not decode; by default reply ``{"error": reason}``.

        ``str(error)`` says why, with the wire path of each bad field (an attrs
        validator's failure in full, at its field: ``... @ $.name``); ``error.frame`` is
        the frame as it arrived, text or binary. The connection stays open.
        """
        self._runner.send_error(str(error))

    async def on_error(self, error: Exception) -> None:
        """Handle an exception raised by another hook; by default log it.

        The connection stays open. A `SessionClosedError` (the session was resumed by
        another connection while its handler was still updating it) is the expected end
        of that race, not a bug: it is logged at INFO, without a traceback, and any
        other error at ERROR with its traceback.
        """
        side = self._runner.room_side
        room = side.name if side is not None else None
        if isinstance(error, SessionClosedError):
            _logger.info("session %s of room %r: %s", self._runner.id, room, error)
            return
        _logger.error(
            "unhandled error in session %s of room %r", self._runner.id, room, exc_info=error
        )

    async def on_close(self, code: int, reason: str) -> None:
        """Run exactly once when an admitted session ends, whatever ended it.

        ``code`` is the close code the peer sent, the one the server sent, or 1006 when
        the connection was lost. The session is no longer in ``room.sessions``, so a
        broadcast from here reaches only the others.
        """

    # -------------------------------------------------------------------- actions

    def send(self, message: ServerMsgT, *, policy: DeliveryPolicy | None = None) -> None:
        """Queue ``message`` for this client.

        Never blocks. A client that does not keep up is handled by the message's
        delivery policy (``policy``, else its class's ``delivery``): by default closed
        with 1008 (slow consumer: see ``RoomsConfig.slow_consumer_timeout``). After the
        session started closing, the message is not sent on this connection: if its
        client went (its connection was lost or it closed: the session still handles
        what it had sent) and the session is resumable, it is logged, and a resume
        replays it with the frames the client missed; otherwise it is dropped.

        Raises:
            TypeError: ``message`` is not one of the server messages, or (with
                ``RoomsConfig.check_outbound``) a field does not match its annotation;
                ``policy`` is not a delivery policy or gives the message no key.
        """
        runner = self._runner
        check = runner.check
        if check is not None:
            check(message)
        # `frame_policy`'s common case inline: every send's path.
        chosen = policy if policy is not None else getattr(type(message), "delivery", None)
        if type(chosen) is Disconnect:
            code, key = DISCONNECT, None
        else:
            code, key = frame_policy(message, policy)
        if runner.closing is None:
            opcode = TEXT if runner.format == "json" else BINARY
            runner.send_user(opcode, runner.encode(message), code, key)
        else:
            runner.send_closing(TEXT if runner.format == "json" else BINARY, runner.encode(message))

    def send_bytes(self, data: bytes) -> None:
        """Queue a binary frame carrying ``data`` as it is; never blocks, like `send`."""
        runner = self._runner
        if runner.closing is None:
            runner.send_user(BINARY, bytes(data))
        else:
            runner.send_closing(BINARY, bytes(data))

    def broadcast(
        self,
        message: ServerMsgT,
        *,
        exclude_self: bool = False,
        exclude: Iterable[Session[Any, Any, Any, Any] | str] = (),
        tags: Iterable[str] | None = None,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        """Queue ``message`` for every session of the room (this one too, unless ``exclude_self``).

        ``exclude``, ``tags`` and ``policy`` are `Room.broadcast`'s. Never blocks: see
        `Room.broadcast`.

        Raises:
            TypeError: See `Room.broadcast`.
        """
        if exclude_self:
            exclude = (*exclude, self._runner.id)
        self.room.broadcast(message, exclude=exclude, tags=tags, policy=policy)

    def join_presence(
        self: Session[Any, Any, Any, PresenceRoom[MetaT]], key: str, meta: MetaT
    ) -> None:
        """Add this session's presence to the room, under ``key`` (a user id, say).

        Needs a room class that declares ``presence = trio_rooms.Presence(Meta)`` and a
        session that names it (``Session[Data, ServerMsg, ClientMsg, "ChatRoom"]``), so
        that ``meta`` is checked to be a ``Meta``. Sessions that share a key (one user
        on two devices) are each a presence of it. A session has at most one: joining
        again replaces it, in one diff. It leaves when the session closes.

        Never blocks. Without a backplane the room's presence changes at once; with one
        it changes once the broker has ordered the change (a round trip), on every node
        alike. After the session started closing it does nothing.

        Raises:
            TypeError: ``meta`` is not an instance of the room's metadata class, or
                ``key`` is not a non-empty str.
            PresenceLimitError: the presence is over ``RoomsConfig.max_presence_size``,
                or the room holds ``RoomsConfig.max_presences_per_room`` already.
            RuntimeError: the session is not admitted yet (call it from `on_connect`).
        """
        board = _presence_board(self)
        if self._runner.closing is None:
            board.join(self._runner, key, meta)

    def update_presence(self: Session[Any, Any, Any, PresenceRoom[MetaT]], meta: MetaT) -> None:
        """Replace the metadata of this session's presence; its key stays.

        Subscribers see it as the leave of the old ``ref`` and the join of a new one,
        in one diff (as Phoenix does). Never blocks, like `join_presence`.

        Raises:
            TypeError, PresenceLimitError: as for `join_presence`.
            RuntimeError: the session has not joined presence.
        """
        board = _presence_board(self)
        if self._runner.closing is None:
            board.update(self._runner, meta)

    def leave_presence(self: Session[Any, Any, Any, PresenceRoom[Any]]) -> None:
        """Remove this session's presence; nothing if it has none. Never blocks."""
        _presence_board(self).leave(self._runner)

    def subscribe_presence(self: Session[Any, Any, Any, PresenceRoom[Any]]) -> None:
        """Send this client the room's presences now, then every change, in order.

        The state comes as ``{"$presence": {"state": {key: [{"ref", "meta"}, ...]}}}``,
        each change as ``{"$presence": {"joins": {...}, "leaves": {...}}}``: library
        frames, queued like any other but never replayed to a resumed client (which
        subscribes again, typically in `on_connect`, and gets the state afresh).
        Subscribing again sends the state again.

        Raises:
            RuntimeError: the session is not admitted yet (call it from `on_connect`).
        """
        board = _presence_board(self)
        if self._runner.closing is None:
            board.subscribe(self._runner)

    def unsubscribe_presence(self: Session[Any, Any, Any, PresenceRoom[Any]]) -> None:
        """Stop sending this client presence changes."""
        _presence_board(self).unsubscribe(self._runner)

    async def update(self) -> None:
        """Persist ``data``; returns once the storage has durably committed it.

        Raises:
            StorageError: the write failed; the stored data is what it was before.
            SessionClosedError: the session was resumed by another connection (on this
                node or another): nothing was written, and the session is closed with
                4001 "session resumed elsewhere".
        """
        await self._runner.update()

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
        await self._runner.close(code, reason)


def _presence_board(session: Session[Any, Any, Any, Any]) -> PresenceBoard[Any]:
    runner = session._runner  # pyright: ignore[reportPrivateUsage] - its own module
    side = runner.room_side
    if side is None or runner.phase is Phase.SETUP:
        raise RuntimeError("presence needs an admitted session: use it from on_connect() on")
    board = side.presence
    if board is None:
        raise RuntimeError(
            f"{type(side.room).__qualname__} declares no presence: "
            "add `presence = trio_rooms.Presence(Meta)` to the room class"
        )
    return board


def runner_of(session: Session[Any, Any, Any, Any]) -> SessionRunner:
    """The runner of ``session``: the room's handle on the engine behind the façade."""
    return session._runner  # pyright: ignore[reportPrivateUsage] - the one way in, by design
