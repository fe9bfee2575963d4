"""``Room``: a named object that owns its sessions and their tasks."""

# The _core modules are one unit and share their protected members.
# pyright: reportPrivateUsage=false

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar, TypeVarTuple, cast, get_origin

import trio

from .._errors import DecodeError, RoomsClosedError
from .._message import Message
from ..codec import Codec, WireFormat
from .backplane import Backplane, Envelope
from .config import RoomsConfig
from .connection import Connection
from .memory import MemoryStorage
from .outbound import BINARY, TEXT, Frame, QueueOverflow
from .request import ConnectRequest
from .runner import SessionRunner, session_codec
from .session import Session, runner_of
from .stats import Counters
from .storage import RoomStorage, Storage
from .typeargs import is_concrete, resolve_type_args

__all__ = ["Room", "room_class_of"]

_logger = logging.getLogger("trio_rooms")

SessionT_co = TypeVar("SessionT_co", bound=Session[Any, Any, Any, Any], covariant=True)
MsgT = TypeVar("MsgT", bound=Message)
PosArgsT = TypeVarTuple("PosArgsT")


class Room(Generic[SessionT_co]):
    """A named room, created on first use, one per name, owning its sessions.

    Subclass it with the session class as type argument::

        class ChatRoom(Room[ChatSession]):
            async def on_start(self) -> None:
                self.history: list[Chat] = []

    `Rooms` constructs a room by calling the factory given to `open_rooms` with the
    room's name (the class itself, or any ``Callable[[str], Room]``), so a subclass
    that takes more arguments is wrapped in a lambda. Each live room runs in its own
    nursery, which owns its sessions' tasks and the tasks started with `start_soon`.
    """

    session_class: ClassVar[type[Session[Any, Any, Any, Any]] | None] = None

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        args = resolve_type_args(cls, Room)
        if args is None or len(args) != 1:
            raise TypeError(f"{cls.__qualname__} must subclass Room[SessionClass]")
        if not is_concrete(args):
            return  # generic intermediate class
        session_class: object = get_origin(args[0]) or args[0]  # Room[Base[int]]: its origin
        if not (isinstance(session_class, type) and issubclass(session_class, Session)):
            raise TypeError(
                f"{cls.__qualname__}: Room[...] takes a Session subclass, got {session_class!r}"
            )
        abstract = inspect.isabstract(cast(type, session_class))
        if abstract or session_class._client_classes is None:
            raise TypeError(
                f"{cls.__qualname__}: {session_class.__qualname__} cannot serve clients: it must "
                "bind its message types and implement create_data() and on_message()"
            )
        cls.session_class = session_class

    def __init__(self, name: str) -> None:
        if type(self).session_class is None:
            raise TypeError(
                f"{type(self).__qualname__} has no session class: subclass Room[YourSession]"
            )
        self._name = name
        self._sessions: dict[str, Session[Any, Any, Any, Any]] = {}
        self._sessions_view: Mapping[str, Any] = MappingProxyType(self._sessions)
        #: The same sessions' runners: what a broadcast puts frames on.
        self._runners: dict[str, SessionRunner] = {}
        self._config = RoomsConfig()
        self._counters = Counters()
        self._storage: Storage = MemoryStorage()
        self._room_storage: RoomStorage | None = None
        self._nursery: trio.Nursery | None = None
        self._active = 0
        self._idle_scope: trio.CancelScope | None = None
        self._stopping = False
        self._backplane: Backplane | None = None
        self._node_id = ""

    @property
    def name(self) -> str:
        """The room's name, unique among the live rooms of a `Rooms`."""
        return self._name

    @property
    def storage(self) -> RoomStorage:
        """This room's durable key-value state (``await get(key, type)``, ``put``, ``delete``).

        It outlives the room: a room evicted and created again, or a restarted server on
        the same storage, reads what was stored.
        """
        if self._room_storage is None:
            self._room_storage = RoomStorage(self._storage, self._name)
        return self._room_storage

    @property
    def sessions(self) -> Mapping[str, SessionT_co]:
        """The admitted sessions by id (a read-only live view)."""
        return self._sessions_view

    async def on_start(self) -> None:
        """Run when the room is created, before its first session is admitted."""

    async def on_stop(self) -> None:
        """Run when the room stops: evicted after its idle timeout, or at shutdown.

        Its sessions have ended; tasks started with `start_soon` are cancelled after
        this returns.
        """

    def broadcast(
        self: Room[Session[Any, MsgT, Any, Any]],
        message: MsgT,
        *,
        exclude: Iterable[Session[Any, Any, Any, Any] | str] = (),
    ) -> None:
        """Queue ``message`` for every session of the room except those in ``exclude``.

        Never blocks: the message is encoded once per wire format and the same frame is
        put on each recipient's bounded outbound queue; a recipient that does not keep
        up (see ``RoomsConfig.slow_consumer_timeout``) is closed with 1008 (slow
        consumer), never waited for. ``exclude`` holds sessions or session ids.

        With a backplane, the message is also published once to the other nodes, which
        deliver it to their sessions in this room (``exclude`` applies there too).
        """
        excluded = {s if isinstance(s, str) else s.id for s in exclude} if exclude else None
        self._broadcast_local(message, excluded)
        if self._backplane is not None:
            self._publish(self._backplane, message, excluded)

    async def members(self) -> Sequence[str]:
        """The ids of the room's sessions on every node, sorted.

        Without a backplane, the ids of `sessions`. With one, the sessions every live
        node has in this room (a node that died stops being listed within the
        backplane's time to live).

        Raises:
            BackplaneError: the backplane's broker could not be asked.
        """
        if self._backplane is None:
            await trio.lowlevel.checkpoint()
            return sorted(self._sessions)
        return sorted(await self._backplane.members(self._name))

    def start_soon(self, fn: Callable[[*PosArgsT], Awaitable[object]], *args: *PosArgsT) -> None:
        """Run ``fn(*args)`` in the room's nursery; it is cancelled when the room stops.

        An exception it raises is logged and does not stop the room.
        """
        if self._nursery is None:
            raise RuntimeError(f"room {self._name!r} is not running")
        self._nursery.start_soon(_logged, self, fn, *args)

    # ------------------------------------------------------------------- internals

    def _broadcast_local(self, message: Message, excluded: set[str] | None) -> None:
        frames: dict[WireFormat, Frame] = {}
        queued = 0
        overflowed: list[SessionRunner] = []
        # The hot loop of fan-out: one dict lookup and one append per recipient (or, for
        # a session whose writer is idle, one non-blocking write: see put_first).
        for runner in self._runners.values():
            if excluded is not None and runner.id in excluded:
                continue
            wire = runner.format
            frame = frames.get(wire)
            if frame is None:
                frame = frames[wire] = Frame(
                    TEXT if wire == "json" else BINARY, runner.encode(message)
                )
            try:
                queued += runner.outbound.put_first(frame)
            except QueueOverflow:
                overflowed.append(runner)
        self._counters.messages_out += queued
        for runner in overflowed:  # after the loop: closing removes it from the dict
            runner.overflow()

    def _publish(self, backplane: Backplane, message: Message, excluded: set[str] | None) -> None:
        """Send a broadcast to the other nodes, encoded once with the msgpack codec."""
        encoded = self._remote_codec().encode(message)
        origin = self._node_id
        backplane.publish(self._name, Envelope(origin, tuple(excluded or ()), encoded).pack())

    def _deliver(self, payload: bytes) -> None:
        """Deliver a broadcast another node published to this room's local sessions."""
        try:
            envelope = Envelope.unpack(payload)
            if envelope.origin == self._node_id:
                return  # our own, already delivered locally
            message = self._remote_codec().decode(envelope.message)
        except (ValueError, DecodeError) as exc:
            _logger.warning("dropped a broadcast from another node in room %r: %s", self._name, exc)
            return
        self._broadcast_local(message, set(envelope.exclude) if envelope.exclude else None)

    def _remote_codec(self) -> Codec[Message]:
        session_class = type(self).session_class
        assert session_class is not None
        _, server_classes = session_class.message_classes()
        config = self._config
        return session_codec(server_classes, "msgpack", config.camel_case, config.forbid_extra_keys)

    def _add(self, runner: SessionRunner) -> None:
        backplane = self._backplane
        if backplane is not None:
            if not self._sessions:
                backplane.subscribe(self._name)
            backplane.join(self._name, runner.id)
        self._sessions[runner.id] = cast("Session[Any, Any, Any, Any]", runner.session)
        self._runners[runner.id] = runner
        self._counters.changed()

    def _remove(self, runner: SessionRunner) -> None:
        # By identity: a session taken over shares its id with the one that resumed it.
        if self._runners.get(runner.id) is not runner:
            return
        del self._runners[runner.id]
        del self._sessions[runner.id]
        if self._backplane is not None:
            self._backplane.leave(self._name, runner.id)
            if not self._sessions:
                self._backplane.unsubscribe(self._name)
        self._counters.changed()

    def _mark_busy(self) -> None:
        self._active += 1
        if self._idle_scope is not None:
            self._idle_scope.deadline = float("inf")

    def _mark_done(self) -> None:
        self._active -= 1
        if self._active == 0 and self._idle_scope is not None:
            self._idle_scope.deadline = trio.current_time() + self._idle_delay()

    def _idle_delay(self) -> float:
        # A stopping room has nothing to wait for once its last session is gone.
        return 0.0 if self._stopping else self._config.room_idle_timeout

    async def _serve(
        self, request: ConnectRequest, wire: WireFormat, connection: Connection
    ) -> tuple[int, str]:
        """Run a new session on ``connection`` in this room's nursery until it ends.

        Returns the code and reason it ended with. If the caller is cancelled (the
        transport is shutting down), the session is closed with 1001 and the call
        returns once it has ended, within ``close_timeout``.
        """
        session_class = type(self).session_class
        nursery = self._nursery
        if session_class is None or nursery is None:
            raise RuntimeError(f"room {self._name!r} cannot admit sessions")
        if self._stopping:
            raise RoomsClosedError(f"room {self._name!r} is stopping")
        limit = self._config.max_sessions_per_room
        if limit is not None and self._active >= limit:
            # Filled up between the admission check and the upgrade: try again later.
            await connection.close(1013, "room is full")
            return 1013, "room is full"
        runner = runner_of(session_class())
        runner.attach(self, request, wire, connection)
        self._mark_busy()
        nursery.start_soon(self._run_session, runner, connection)
        try:
            await runner.ended.wait()
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                runner.begin_close(1001, "server shutting down")
                await runner.ended.wait()
            raise
        closing = runner.closing
        return (closing.code, closing.reason) if closing is not None else (1006, "")

    async def _run_session(self, runner: SessionRunner, connection: Connection) -> None:
        try:
            await runner.run(connection, self)
        finally:
            self._mark_done()


async def _logged(room: Room[Any], fn: Callable[..., Awaitable[object]], *args: object) -> None:
    try:
        await fn(*args)
    except Exception:
        logging.getLogger("trio_rooms").exception("task %r of room %r failed", fn, room.name)


def room_class_of(factory: object) -> type[Room[Any]] | None:
    """The room class a factory makes: itself, or a ``functools.partial``'s function.

    None for any other callable: only a room it made tells its class.
    """
    while isinstance(factory, functools.partial):
        factory = factory.func
    if isinstance(factory, type) and issubclass(factory, Room):
        return factory  # pyright: ignore[reportUnknownVariableType]
    return None
