"""``RoomRunner``: what runs one room, apart from the `Room` its user wrote.

A `Room` is the user's façade: hooks, actions and typed attributes. Its runner holds
what `Rooms` gives a live room (config, storage, backplane, its nursery) and what the
room's sessions share: their runners, for fan-out, and the public view of them; the
room's input gate and its cached storage (`RoomState`). It admits new sessions, counts
them for the idle timeout, and restarts the room when a commit fails.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, final

import trio

from .._delivery import DeliveryPolicy, frame_policy, from_spec, policy_spec
from .._errors import DecodeError, OwnershipLostError, RoomsClosedError, StorageError
from .._message import Message
from ..codec import Codec, WireFormat
from .alarms import RoomAlarms
from .backplane import Backplane, Envelope
from .config import ReplayLimits, RoomsConfig
from .connection import Connection, close_within
from .gate import Gate
from .memory import MemoryStorage
from .outbound import BINARY, TEXT, Frame, QueueOverflow
from .presence import declared_presence, presence_board
from .presence_board import PresenceBoard
from .presence_sync import PresenceBackplane
from .record_refresh import RecordRefresh
from .replay import RoomLog
from .request import ConnectRequest
from .room_state import RoomState
from .runner import SessionRunner
from .session import Session, runner_of
from .session_codecs import outbound_check, session_codec
from .stats import Counters, RoomCounters
from .storage import Storage
from .tags import TagIndex

__all__ = ["RoomRunner"]

_logger = logging.getLogger("trio_rooms")


@final
class RoomRunner:
    """Runs one `Room`: made by the room itself, bound and driven by its `Rooms`."""

    def __init__(
        self, room: object, name: str, session_class: type[Session[Any, Any, Any, Any]]
    ) -> None:
        #: The `Room` façade this runs (what `Session.room` returns).
        self.room = room
        self.name = name
        self._session_class = session_class
        self.sessions: dict[str, Session[Any, Any, Any, Any]] = {}
        self.sessions_view: Mapping[str, Any] = MappingProxyType(self.sessions)
        #: The same sessions' runners: what a broadcast puts frames on.
        self.runners: dict[str, SessionRunner] = {}
        self.config = RoomsConfig()
        self.counters = Counters()
        #: What its sessions' delivery policies did (into ``counters`` too).
        self.delivery_counters = RoomCounters(self.counters)
        #: Its sessions by tag, for tagged broadcasts.
        self.tags: TagIndex[SessionRunner] = TagIndex()
        self.storage: Storage = MemoryStorage()
        #: One event of the room at a time; letting it go seals the event's writes.
        self.gate = Gate(self._event_ended, name)
        self.state = RoomState(
            self.storage, name, self.gate, cache=True, max_cached=self.config.max_cached_values
        )
        self.state.on_durable = self._publish_held
        #: Broadcasts for the other nodes that wait for a write to be durable, in order.
        self._held_publishes: deque[tuple[int, bytes]] = deque()
        #: Its durable alarms as its events see them.
        self.alarms = RoomAlarms(self.state)
        #: What a resuming client is replayed from.
        self.log = RoomLog(self.state)
        #: Keeps its sessions' stored records resumable after a crash.
        self.refresh = RecordRefresh(self.log, self.runners)
        self.backplane: Backplane | None = None
        #: Its presences, if the room class declares a `Presence`.
        self.presence: PresenceBoard[Any] | None = None
        #: Broadcasts delivered to the room's sessions so far (what their `sent` counts).
        self.broadcasts = 0
        #: Checks a message before it is broadcast (``RoomsConfig.check_outbound``).
        self.check: Callable[[Message], None] | None = None
        self._node_id = ""
        self.nursery: trio.Nursery | None = None
        #: Sessions admitted or being admitted.
        self.active = 0
        #: The runners of those, as they run in their transports' tasks.
        self._serving: set[SessionRunner] = set()
        #: Set once the last of them ended, while the stopping room waits for that.
        self._all_ended: trio.Event | None = None
        #: Resumable sessions that closed but may still send for their resumer, by id,
        #: each with its end and whether a resume waits for it (`wait_gone`).
        self._going: dict[str, tuple[SessionRunner, trio.Event, bool]] = {}
        #: Other work that keeps the room from being idle (an alarm firing).
        self._held = 0
        #: Set while `Rooms` waits for the room to be idle: moved as sessions come and go.
        self.idle_scope: trio.CancelScope | None = None
        self.stopping = False
        #: A commit failed: the room stops without ``on_stop`` and is made anew.
        self.broken = False

    def bind(
        self,
        *,
        config: RoomsConfig,
        counters: Counters,
        storage: Storage,
        backplane: Backplane | None,
        node_id: str,
    ) -> None:
        """Give the room what its `Rooms` shares with every room, before it starts."""
        self.config = config
        self.counters = counters
        self.delivery_counters.bind(counters)
        self.storage = storage
        self.backplane = backplane
        self._node_id = node_id
        if config.check_outbound:
            _, server_classes = self._session_class.message_classes()
            self.check = outbound_check(server_classes, config.camel_case)
        # With a backplane another node may write the room's values: read them anew.
        self.state.bind(storage, cache=backplane is None, max_cached=config.max_cached_values)
        # With a backplane every node sends the room's frames in its own order: one log
        # cannot number them for every node (the single-owner mode will).
        self.log.bind(None if backplane is not None else self._replay_limits(config))
        self.refresh.resume_window = config.resume_window
        self._bind_presence(config, backplane)

    def _bind_presence(self, config: RoomsConfig, backplane: Backplane | None) -> None:
        declared = declared_presence(type(self.room))
        if declared is None:
            return
        if backplane is not None and not isinstance(backplane, PresenceBackplane):
            raise TypeError(
                f"{type(self.room).__qualname__} declares presence, but the backplane "
                f"{type(backplane).__qualname__} does not carry it (no 'presence' attribute)"
            )
        self.presence = presence_board(declared, self.room)
        sync = backplane.presence if backplane else None
        self.presence.bind(self.name, config, sync, self.state.pending)

    def _replay_limits(self, config: RoomsConfig) -> ReplayLimits | None:
        wanted: object = getattr(type(self.room), "replay", True)
        if isinstance(wanted, ReplayLimits):
            return wanted
        return config.replay if wanted is True else None

    def _event_ended(self) -> None:
        self.state.seal()

    def storage_failed(self, error: StorageError) -> None:
        """A commit failed: drop what waits behind it, end every session, restart the room.

        ``on_stop`` is not run: the room's memory may hold state that was never stored.
        Each session is closed with 1011; a resumable one can resume in the new room.
        A commit refused because another node owns the room now (`OwnershipLostError`)
        closes them with 1012 instead: their clients reconnect, to the new owner.
        """
        if isinstance(error, OwnershipLostError):
            self.lose_ownership(error)
            return
        self._stop_broken(1011, "storage failed")

    def lose_ownership(self, error: OwnershipLostError) -> None:
        """This node does not own the room any more: stop at once, writing nothing more.

        Nothing held behind a write is sent; every session is closed with 1012 (service
        restart), which clients answer by reconnecting and resuming (on the new owner).
        """
        self.state.abandon(error)
        self._stop_broken(1012, "the room moved to another node")

    def _stop_broken(self, code: int, reason: str) -> None:
        self.broken = self.stopping = True
        self._held_publishes.clear()  # they reflect writes that are lost
        for runner in tuple(self.runners.values()):
            runner.begin_close(code, reason, discard=True)
        if self.idle_scope is not None and self.idle:
            self.idle_scope.deadline = trio.current_time()

    # -------------------------------------------------------------- broadcasts

    def broadcast(
        self,
        message: Message,
        excluded: set[str] | None,
        tags: frozenset[str] | None = None,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        """Deliver ``message`` to the local sessions and publish it to the other nodes.

        ``tags``: only to the sessions with any of them (None: every session).

        Raises:
            TypeError: the message fails its check, or ``policy`` is not one (or gives
                it no key); nothing is sent.
        """
        check = self.check
        if check is not None:
            check(message)  # once per broadcast, not per recipient
        code, key = frame_policy(message, policy)
        backplane = self.backplane
        payload = None
        if backplane is not None:
            # Made first: a policy that cannot cross nodes sends nothing anywhere.
            encoded = self._remote_codec().encode(message)
            tagged = tuple(tags) if tags is not None else None
            envelope = Envelope(
                self._node_id, tuple(excluded or ()), encoded, tagged, policy_spec(policy)
            )
            payload = envelope.pack()
        self._broadcast_local(message, excluded, tags, code, key)
        if backplane is not None and payload is not None:
            after = self.state.pending()
            if after or self._held_publishes:
                # The output gate holds it for the other nodes' clients too.
                self._held_publishes.append((after, payload))
            else:
                backplane.publish(self.name, payload)

    def _publish_held(self, durable: int) -> None:
        held = self._held_publishes
        backplane = self.backplane
        while held and held[0][0] <= durable:
            _, payload = held.popleft()
            if backplane is not None:
                backplane.publish(self.name, payload)

    def deliver(self, payload: bytes) -> None:
        """Deliver a broadcast another node published to this room's local sessions."""
        try:
            envelope = Envelope.unpack(payload)
            if envelope.origin == self._node_id:
                return  # our own, already delivered locally
            message = self._remote_codec().decode(envelope.message)
            policy = from_spec(envelope.policy) if envelope.policy is not None else None
            code, key = frame_policy(message, policy)
        except (ValueError, TypeError, DecodeError) as exc:
            _logger.warning("dropped a broadcast from another node in room %r: %s", self.name, exc)
            return
        excluded = set(envelope.exclude) if envelope.exclude else None
        tags = frozenset(envelope.tags) if envelope.tags is not None else None
        self._broadcast_local(message, excluded, tags, code, key, logged=False)

    def _broadcast_local(
        self,
        message: Message,
        excluded: set[str] | None,
        tags: frozenset[str] | None = None,
        policy: int = 0,
        key: object = None,
        *,
        logged: bool = True,
    ) -> None:
        frames: dict[WireFormat, Frame] = {}
        log = self.log
        payload = None
        recipients: Iterable[SessionRunner]
        if tags is None:
            recipients = self.runners.values()
            only = None
        else:
            recipients = [
                runner
                for runner in self.tags.any_of(tags)
                if excluded is None or runner.id not in excluded
            ]
            only = tuple(runner.id for runner in recipients) if log.active else None
            excluded = None
        if logged and log.active:
            # Logged before `after` is read: the frame leaves once its entry is durable.
            payload = self._codec("json").encode(message)
            log.broadcast("json", payload, excluded, only)
        after = self.state.pending()  # the output gate: after the writes made before it
        if payload is not None:
            frames["json"] = Frame(TEXT, payload, after, policy, key)
        queued = 0
        overflowed: list[SessionRunner] = []
        if tags is None:
            self.broadcasts += 1  # every session in the room counts it, but the excluded
        # The hot loop of fan-out: one dict lookup and one append per recipient (or, for
        # a session whose writer is idle, one non-blocking write: see put_first).
        for runner in recipients:
            if excluded is not None and runner.id in excluded:
                runner.missed_broadcasts += 1  # the rare case pays: see SessionRunner.sent
                continue
            if tags is not None:
                runner.count_sent()  # a tagged one counts per recipient, not per room
            wire = runner.format
            frame = frames.get(wire)
            if frame is None:
                frame = frames[wire] = Frame(
                    TEXT if wire == "json" else BINARY, runner.encode(message), after, policy, key
                )
            try:
                queued += runner.outbound.put_first(frame)
            except QueueOverflow:
                overflowed.append(runner)
        self.counters.messages_out += queued
        for runner in overflowed:  # after the loop: closing removes it from the dict
            runner.overflow()

    def tagged(self, tag: str) -> list[Session[Any, Any, Any, Any]]:
        """The local sessions tagged ``tag``."""
        return [self.sessions[runner.id] for runner in self.tags.tagged(tag)]

    def _remote_codec(self) -> Codec[Message]:
        return self._codec("msgpack")

    def _codec(self, wire: WireFormat) -> Codec[Message]:
        """The room's server messages in ``wire``: what the log and other nodes read."""
        _, server_classes = self._session_class.message_classes()
        config = self.config
        return session_codec(server_classes, wire, config.camel_case, config.forbid_extra_keys)

    def decode_logged(self, wire: WireFormat, payload: bytes) -> Message:
        """A logged server message, decoded (to replay it in another wire format)."""
        return self._codec(wire).decode(payload)

    # ---------------------------------------------------------------- sessions

    def add(self, runner: SessionRunner) -> None:
        """An admitted session joins the room (and its backplane membership)."""
        backplane = self.backplane
        if backplane is not None:
            if not self.sessions:
                backplane.subscribe(self.name)
            backplane.join(self.name, runner.id)
        self.sessions[runner.id] = runner.session  # pyright: ignore[reportArgumentType] - a runner's session is a Session
        self.runners[runner.id] = runner
        runner.tags.join(self.tags)
        if self.presence is not None:
            self.presence.start_watching()
        runner.joined(self.broadcasts)
        self.counters.changed()

    def remove(self, runner: SessionRunner) -> None:
        """A closing session leaves the room; nothing happens if it is not in it."""
        # By identity: a session taken over shares its id with the one that resumed it.
        if self.runners.get(runner.id) is not runner:
            return
        del self.runners[runner.id]
        del self.sessions[runner.id]
        runner.tags.leave()
        runner.left(self.broadcasts)
        if self.presence is not None:
            self.presence.session_left(runner)
            if not self.sessions:
                self.presence.stop_watching()
        if self.backplane is not None:
            self.backplane.leave(self.name, runner.id)
            if not self.sessions:
                self.backplane.unsubscribe(self.name)
        self.counters.changed()

    def idle_delay(self) -> float:
        """How long the room may stay without sessions before it is evicted."""
        # A stopping room has nothing to wait for once its last session is gone.
        return 0.0 if self.stopping else self.config.room_idle_timeout

    async def admit(
        self, request: ConnectRequest, wire: WireFormat, connection: Connection
    ) -> SessionRunner | tuple[int, str]:
        """A new session on ``connection``, to ``run`` at once in the caller's task.

        Returns the close code and reason instead if the room is full (closed with 1013).

        Raises:
            RoomsClosedError: the room is stopping.
        """
        if self.nursery is None:  # not started, or stopped
            raise RuntimeError(f"room {self.name!r} cannot admit sessions")
        if self.stopping:
            raise RoomsClosedError(f"room {self.name!r} is stopping")
        limit = self.config.max_sessions_per_room
        if limit is not None and self.active >= limit:
            # Filled up between the admission check and the upgrade: try again later.
            await close_within(connection, 1013, "room is full", self.config.close_timeout)
            return 1013, "room is full"
        runner = runner_of(self._session_class())
        runner.attach(self, request, wire, connection)
        self._mark_busy()
        # Run in the caller's task (no task per session that only waits for it to end);
        # the room still owns it: it waits for it to stop, and cuts it if stopped hard.
        # `run` tells `session_ended` last thing.
        self._serving.add(runner)
        return runner

    def session_ended(self, runner: SessionRunner) -> None:
        """A session `admit` made has run to its end."""
        self._serving.discard(runner)
        going = self._going.get(runner.id)
        if going is not None and going[0] is runner:
            del self._going[runner.id]
            going[1].set()
        self._mark_done()

    def going(self, runner: SessionRunner, *, drains: bool) -> None:
        """``runner`` closed but its handler may still run, and send, until it ends:
        ``drains``, it handles what its client sent before it went; else it was
        resumed on another connection, in the middle of an event."""
        self._going[runner.id] = (runner, trio.Event(), drains)

    async def wait_gone(self, session_id: str) -> None:
        """Wait until the session ``session_id`` has ended here, if it drains.

        Its handler still handles what its client sent before it went, and the answers
        are logged for the resume (`SessionRunner.send_closing`): a resume that read the
        log before they are in would replay none of them, and its own messages would be
        handled before them. Bounded by ``3 * close_timeout`` (its handler, ``on_close``
        and record): one still going then is handed over (`hand_over`). One resumed
        in the middle of an event is not waited for: the resume reads the log holding
        the room's gate, hence after that event.
        """
        going = self._going.get(session_id)
        if going is None or not going[2]:
            await trio.lowlevel.checkpoint()
            return
        with trio.move_on_after(3 * self.config.close_timeout):
            await going[1].wait()

    def hand_over(self, session_id: str) -> None:
        """A resume of ``session_id`` reads the log now: a session of that id still
        going logs nothing more, and stops handling (`SessionRunner.hand_over`)."""
        going = self._going.pop(session_id, None)
        if going is not None:
            going[0].hand_over(drains=going[2])
            going[1].set()

    async def own_sessions(self) -> None:
        """Run in the room's nursery: once that is cancelled, end its sessions and wait.

        A room stops when it has no session left; cancelled before (a hard shutdown,
        past ``shutdown_timeout``), its sessions are cut, and it returns once they have
        ended (their ``on_close`` and record are bounded by ``close_timeout`` each).
        Meanwhile it keeps their stored records resumable (`RecordRefresh`).
        """
        try:
            await self.refresh.run()
        finally:
            # Bounded all the same: a storage that hangs must not hang the shutdown.
            deadline = trio.current_time() + 3 * self.config.close_timeout
            with trio.CancelScope(shield=True, deadline=deadline):
                for runner in tuple(self._serving):
                    runner.cut()
                while self._serving:
                    self._all_ended = trio.Event()
                    await self._all_ended.wait()

    @property
    def idle(self) -> bool:
        """Whether nothing keeps the room alive: no session, no alarm firing."""
        return self.active == 0 and self._held == 0

    @contextmanager
    def hold(self) -> Generator[None]:
        """Keep the room from being evicted as idle during the block (like a session)."""
        self._held += 1
        self._busy()
        try:
            yield
        finally:
            self._held -= 1
            self._maybe_idle()

    def _mark_busy(self) -> None:
        self.active += 1
        self._busy()

    def _mark_done(self) -> None:
        self.active -= 1
        if not self._serving and self._all_ended is not None:
            self._all_ended.set()
        self._maybe_idle()

    def _busy(self) -> None:
        # Set only if it was counting down: trio re-sorts a scope's deadline on each set.
        scope = self.idle_scope
        if scope is not None and scope.deadline != math.inf:
            scope.deadline = math.inf

    def _maybe_idle(self) -> None:
        if self.idle and self.idle_scope is not None:
            self.idle_scope.deadline = trio.current_time() + self.idle_delay()
