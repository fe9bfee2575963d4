"""``Room``: a named object that owns its sessions and their tasks.

This is the user's façade: hooks, actions, typed attributes. What runs a room (its
sessions' runners, fan-out, admission, its nursery) is its `RoomRunner`.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar, TypeVarTuple, cast, get_origin

import trio

from .._delivery import DeliveryPolicy
from .._message import Message
from .alarms import alarm_time, as_datetimes
from .config import ReplayLimits
from .gate import Exclusive, Unlocked
from .room_runner import RoomRunner
from .room_storage import RoomStorage
from .session import Session
from .tags import check_tags_argument
from .typeargs import is_concrete, resolve_type_args

__all__ = ["Room", "room_class_of", "room_runner_of"]

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

    #: Replay missed frames to a resuming client: True (``RoomsConfig.replay``'s bounds),
    #: a `ReplayLimits` of the room's own, or False (no log: the client is told nothing
    #: was replayed, and the room's own ``on_resume`` brings it up to date).
    replay: ClassVar[ReplayLimits | bool] = True

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
        checked = cast("type[Session[Any, Any, Any, Any]]", session_class)
        if inspect.isabstract(checked) or not _binds_messages(checked):
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
        self._runner = RoomRunner(self, name, type(self).session_class)  # pyright: ignore[reportArgumentType] - checked just above
        self._room_storage: RoomStorage | None = None

    @property
    def name(self) -> str:
        """The room's name, unique among the live rooms of a `Rooms`."""
        return self._runner.name

    @property
    def storage(self) -> RoomStorage:
        """This room's durable key-value state (``await get(key, type)``, ``put``, ``delete``).

        Cached, committed once per event, and gated: see `RoomStorage`. It outlives the
        room: a room evicted and created again, or a restarted server on the same
        storage, reads what was stored.
        """
        if self._room_storage is None:
            self._room_storage = RoomStorage._over(self._runner.state, self._runner.alarms)  # pyright: ignore[reportPrivateUsage] - its constructor
        return self._room_storage

    def exclusive(self) -> Exclusive:
        """Hold the room's gate for a block: no other event of the room runs meanwhile.

        Every event (a message, a connect or a close, a route call, an alarm,
        ``on_start`` and ``on_stop``) already runs holding it, so inside a hook this
        changes nothing; it is for the tasks of the room's own (`start_soon`)::

            async def tick(self) -> None:
                while True:
                    await trio.sleep(1 / 20)
                    async with self.exclusive():
                        self.world.step()
                        self.broadcast(Snapshot(self.world.state()))
        """
        return Exclusive._over(self._runner.gate)  # pyright: ignore[reportPrivateUsage] - its constructor

    def unlocked(self) -> Unlocked:
        """Let the room's other events run during a block of a hook, then take the gate back.

        For a hook that waits on something slow and unrelated to the room (an HTTP
        call, a sleep)::

            async def on_message(self, message: Lookup) -> None:
                async with self.room.unlocked():
                    profile = await fetch_profile(message.user)
                self.send(Profile(profile))

        Other events may change the room's state during the block: read it again
        after. Outside a hook (or `exclusive`) it does nothing.
        """
        return Unlocked._over(self._runner.gate)  # pyright: ignore[reportPrivateUsage] - its constructor

    @property
    def sessions(self) -> Mapping[str, SessionT_co]:
        """The admitted sessions by id (a read-only live view)."""
        return self._runner.sessions_view

    async def on_start(self) -> None:
        """Run when the room is created, before its first session is admitted."""

    async def on_stop(self) -> None:
        """Run when the room stops: evicted after its idle timeout, or at shutdown.

        Its sessions have ended; tasks started with `start_soon` are cancelled after
        this returns.
        """

    async def on_alarm(self, name: str, attempt: int) -> None:
        """Run when the alarm ``name`` (set with `set_alarm`) falls due.

        It is an event of the room, like a message: it runs holding the room's gate,
        its writes are committed together with the alarm's deletion, and the room is
        not evicted while it runs (an alarm of an evicted room brings the room back,
        ``on_start`` first). ``attempt`` is 0 the first time; if the hook raises, the
        error is logged and the alarm runs again later with ``attempt + 1``, after
        ``RoomsConfig.alarm_retry_delay`` doubled at each failure (at most
        ``alarm_retry_max_delay``), until ``alarm_max_attempts`` runs have failed.

        At least once: a crash, or a shutdown that cancels the hook, before its commit
        runs it again after the restart, so make what it does outside the room
        idempotent. The default logs a warning and does nothing.
        """
        await trio.lowlevel.checkpoint()
        _logger.warning(
            "room %r: alarm %r fell due, but %s does not override on_alarm",
            self.name,
            name,
            type(self).__qualname__,
        )

    async def set_alarm(
        self, name: str, *, at: datetime | float | None = None, delay: float | None = None
    ) -> None:
        """Set the durable alarm ``name``: `on_alarm` runs once it is due.

        Give exactly one of ``at`` (an aware `datetime`, or a UNIX time) and ``delay``
        (seconds from now). Setting a name again replaces its alarm, even while that
        one's `on_alarm` runs; a time in the past makes it due at once. A room has as
        many alarms as it sets::

            async def on_message(self, message: Bid) -> None:
                await self.room.set_alarm("auction-end", delay=60)

        The alarm is committed with the event's other writes (see `storage`), so it
        survives the room's eviction and a restart of the server; if that commit fails
        it was never set. Does not wait for the commit.

        Raises:
            TypeError: not exactly one of ``at`` and ``delay`` is given.
            ValueError: ``name`` is empty or longer than
                ``RoomsConfig.max_alarm_name_length``; ``at`` is a naive datetime or
                not finite; ``delay`` is negative or not finite.
            StorageError: an earlier commit of the room failed (the room is restarting).
        """
        alarms = self._runner.alarms
        alarms.check_name(name)
        alarms.set(name, alarm_time(alarms.now(), at, delay))
        await trio.lowlevel.checkpoint()

    async def cancel_alarm(self, name: str) -> None:
        """Cancel the alarm ``name``, committed like `set_alarm`; nothing if it is not set.

        Raises:
            ValueError: ``name`` is not a valid alarm name.
            StorageError: an earlier commit of the room failed (the room is restarting).
        """
        alarms = self._runner.alarms
        alarms.check_name(name)
        alarms.put(name, None)
        await trio.lowlevel.checkpoint()

    def alarms(self) -> dict[str, datetime]:
        """The room's alarms, earliest first: name -> when it falls due (UTC).

        As the room sees them now: the sets and cancels of the running event (and of a
        transaction) are in, committed or not.
        """
        return as_datetimes(self._runner.alarms.view())

    def broadcast(
        self: Room[Session[Any, MsgT, Any, Any]],
        message: MsgT,
        *,
        exclude: Iterable[Session[Any, Any, Any, Any] | str] = (),
        tags: Iterable[str] | None = None,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        """Queue ``message`` for every session of the room except those in ``exclude``.

        Never blocks: the message is encoded once per wire format and the same frame is
        put on each recipient's bounded outbound queue; a recipient that does not keep
        up is handled by the message's delivery policy (``policy``, else its class's
        ``delivery``): by default closed with 1008 (slow consumer, see
        ``RoomsConfig.slow_consumer_timeout``), never waited for. ``exclude`` holds
        sessions or session ids. With ``tags``, only the sessions that have any of them
        (`Session.tags`) get it: that costs per tagged recipient, not per member.

        With a backplane, the message is also published once to the other nodes, which
        deliver it to their sessions in this room (``exclude``, ``tags`` and ``policy``
        apply there too).

        Raises:
            TypeError: With ``RoomsConfig.check_outbound`` (the default), ``message`` is
                not one of the server messages or a field does not match its annotation
                (checked once, with or without recipients); ``tags`` is a str;
                ``policy`` is not a delivery policy or gives the message no key. Nothing
                is sent.
        """
        excluded = {s if isinstance(s, str) else s.id for s in exclude} if exclude else None
        tagged = (
            frozenset(check_tags_argument(tags, "Room.broadcast(tags=...)"))
            if tags is not None
            else None
        )
        self._runner.broadcast(message, excluded, tagged, policy)

    def sessions_tagged(self, tag: str) -> Sequence[SessionT_co]:
        """The sessions of the room on this node that have the tag ``tag``.

        Tags live where a session's connection is: with a backplane, those of other
        nodes are not listed.
        """
        return cast("list[SessionT_co]", self._runner.tagged(tag))

    async def members(self) -> Sequence[str]:
        """The ids of the room's sessions on every node, sorted.

        Without a backplane, the ids of `sessions`. With one, the sessions every live
        node has in this room (a node that died stops being listed within the
        backplane's time to live).

        Raises:
            BackplaneError: the backplane's broker could not be asked.
        """
        runner = self._runner
        if runner.backplane is None:
            await trio.lowlevel.checkpoint()
            return sorted(runner.sessions)
        return sorted(await runner.backplane.members(runner.name))

    def start_soon(self, fn: Callable[[*PosArgsT], Awaitable[object]], *args: *PosArgsT) -> None:
        """Run ``fn(*args)`` in the room's nursery; it is cancelled when the room stops.

        An exception it raises is logged and does not stop the room.
        """
        nursery = self._runner.nursery
        if nursery is None:
            raise RuntimeError(f"room {self.name!r} is not running")
        nursery.start_soon(_logged, self, fn, *args)


def _binds_messages(session_class: type[Session[Any, Any, Any, Any]]) -> bool:
    try:
        session_class.message_classes()
    except TypeError:
        return False  # a generic session class
    return True


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


def room_runner_of(room: Room[Any]) -> RoomRunner:
    """The runner of ``room``: its `Rooms`'s handle on the engine behind the façade."""
    return room._runner  # pyright: ignore[reportPrivateUsage] - the one way in, by design
