"""``RoomRegistry``: what runs the rooms of one `open_rooms` block, behind `Rooms`.

The rooms by name, created on demand and evicted when idle; the connection caps and
the admission of a handshake before its upgrade; delivery from the backplane; and
shutdown. `Rooms` is its public face; the serving port (`serving`, `http_serving`)
and `open_rooms` reach it through `registry_of`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, final

import attrs
import trio

from .._errors import (
    BackplaneError,
    OwnedElsewhereError,
    OwnershipLostError,
    RoomsClosedError,
    StorageError,
    TooManyRoomsError,
)
from ..codec import WireFormat
from ..codec._record import JsonRecords
from .admission import ConnectionCounter, Reject
from .backplane import Backplane
from .commit_route import RoutesCommits
from .config import RoomsConfig, validate_room_name
from .connection import Connection, close_within
from .origins import origin_allowed
from .ownership import Cluster, OwnedRoom, OwnerLost
from .parking import ParkedSession
from .reattach import MovableConnection
from .request import ConnectRequest
from .room import Room, room_class_of, room_runner_of
from .room_runner import RoomRunner
from .route_answer import answer_route, route_path
from .routes import HttpRequest, Response, route_table
from .routing import HttpRejection
from .runner import SessionRunner
from .scheduler import AlarmScheduler
from .session import Session
from .stats import Counters, RoomsStatistics, RoomStatistics
from .storage import Commit, FencedStorage, Storage

__all__ = ["OWNER_RETRY", "Placed", "RoomRegistry"]

_logger = logging.getLogger("trio_rooms")

#: `Session.authorize` as the library wrote it: it lets every client in.
_LET_IN = Session.authorize.__func__

#: Seconds between two attempts to take a room that has no owner that answers.
OWNER_RETRY = 0.1
_DOWN = (1001, "server shutting down")
_NO_OWNER = (1013, "room has no owner that answers")
#: A session whose owner was lost and that could not be moved: its client resumes it.
_OWNER_LOST = (1012, "the room's node was lost")


@final
class _Slot:
    """A name's place in the registry: its room while starting, running and stopping."""

    __slots__ = ("owned", "ready", "room", "stopped", "stopping")

    def __init__(self) -> None:
        self.room: Room[Any] | None = None
        #: It runs under this node's lease (a cluster's).
        self.owned = False
        self.ready = trio.Event()
        self.stopped = trio.Event()
        self.stopping = False


@final
@attrs.frozen
class Placed:
    """A session admitted to a room of this node (`RoomRegistry.place`), to run now."""

    session: SessionRunner
    room: RoomRunner
    #: What it runs on: the transport's connection, or one that can move.
    connection: Connection

    def run(self) -> Awaitable[tuple[int, str] | ParkedSession]:
        """The session's run, for the caller to await (no coroutine of its own)."""
        return self.session.run(self.connection, self.room)

    def ended_with(self) -> tuple[int, str]:
        """The code and reason the session ended with (after `run`)."""
        return self.session.ended_with()


@final
class RoomRegistry:
    """What runs the rooms of one `open_rooms` block, behind its `Rooms` façade.

    The rooms by name (created on demand, evicted when idle), the connection caps,
    admission before an upgrade, and shutdown; the serving port and the backplane
    reach it through `registry_of`.
    """

    def __init__(
        self,
        factory: Callable[[str], Room[Any]],
        config: RoomsConfig,
        nursery: trio.Nursery,
        storage: Storage,
        backplane: Backplane | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self._factory = factory
        #: With a cluster, a room runs here only while this node holds its lease.
        self._cluster = cluster
        self.config = config
        self._nursery = nursery
        self._storage = storage
        self._backplane = backplane
        #: Tells this node's broadcasts apart from other nodes' on the backplane.
        self._node_id = secrets.token_hex(8)
        self.counters = Counters()
        self.connections = ConnectionCounter(
            config.max_connections, config.max_connections_per_address, self.counters.changed
        )
        self.room_class = room_class_of(factory)
        if self.room_class is not None:
            route_table(self.room_class)  # a route declared wrongly fails here, not at a request
        #: Route bodies and results, with the rooms' wire options.
        self.records = JsonRecords(
            camel_case=config.camel_case, forbid_extra_keys=config.forbid_extra_keys
        )
        self._slots: dict[str, _Slot] = {}
        #: Rooms being stopped: they count against ``max_rooms`` until stopped, and a
        #: room asked for at the cap waits for one of them instead of being refused.
        self._stopping: set[_Slot] = set()
        #: This node's clients being relayed to another node, by room.
        self._relayed: collections.Counter[str] = collections.Counter()
        self._closing = False
        #: Fires the rooms' alarms: `open_rooms` runs it in the rooms' nursery.
        #: The fencing token of each room whose start failed after its lease was taken
        #: (at most ``max_rooms``, the oldest dropped): what the retry of its alarm carries.
        self._failed_fences: dict[str, int] = {}
        # In a cluster, the alarms other nodes set are found by looking for them: each
        # is seen within ``alarm_retry_delay``, and fired here if its owner is gone.
        look_every = config.alarm_retry_delay if cluster is not None else math.inf
        self.alarms = AlarmScheduler(
            storage, config, self.get, self._failed_fence, look_every=look_every
        )

    @property
    def storage(self) -> Storage:
        """Where the rooms keep their state."""
        return self._storage

    @property
    def cluster(self) -> Cluster | None:
        """The cluster that decides which node owns each room (None: this node owns all)."""
        return self._cluster

    async def get(self, name: str) -> Room[Any]:
        """The live room called ``name``, created if needed: see `Rooms.get`."""
        running = self._running(name)
        if running is not None:  # what nearly every handshake asks for (twice)
            return running
        validate_room_name(name)
        while True:
            if self._closing:
                raise RoomsClosedError("rooms are shutting down")
            slot = self._slots.get(name)
            if slot is None:
                # Counted and taken with no checkpoint between: concurrent creations
                # cannot pass the cap together.
                if len(self._slots) >= self.config.max_rooms:
                    if not self._stopping:
                        raise TooManyRoomsError(self.config.max_rooms)
                    await next(iter(self._stopping)).stopped.wait()
                    continue
                slot = self._slots[name] = _Slot()
                try:
                    room: Room[Any] = await self._nursery.start(self._run_room, name, slot)
                finally:
                    slot.ready.set()
                    if slot.room is None and self._slots.get(name) is slot:
                        del self._slots[name]
                if not slot.stopping:
                    return room
                continue  # idle and evicted before this task ran again: make it anew
            if slot.stopping or (slot.room is not None and room_runner_of(slot.room).broken):
                await slot.stopped.wait()  # then make it anew
            elif slot.room is None or not slot.ready.is_set():
                # Until its creator has it too: connections are admitted in the order
                # they asked for the room, the one that made it first.
                await slot.ready.wait()
            else:
                return slot.room

    def _running(self, name: str) -> Room[Any] | None:
        """The room called ``name`` if `get` would return it at once; else None.

        A name with a slot was validated when the slot was made.
        """
        slot = self._slots.get(name)
        if slot is None or self._closing or slot.stopping:
            return None
        room = slot.room
        if room is None or not slot.ready.is_set() or room_runner_of(room).broken:
            return None
        return room

    def statistics(self) -> RoomsStatistics:
        """A snapshot of the rooms, sessions, queues and message counters."""
        rooms = [slot.room for slot in self._slots.values() if slot.room and not slot.stopping]
        by_room = {room.name: room_statistics(room_runner_of(room)) for room in rooms}
        counters = self.counters
        return RoomsStatistics(
            rooms=len(rooms),
            sessions=sum(room.sessions for room in by_room.values()),
            queued_bytes=sum(room.queued_bytes for room in by_room.values()),
            messages_in=counters.messages_in,
            messages_out=counters.messages_out,
            dropped=counters.dropped,
            invalid=counters.invalid,
            rate_limited=counters.rate_limited,
            connections=self.connections.total,
            errors=counters.errors,
            closes=dict(counters.closes),
            backplane=self._backplane.statistics() if self._backplane is not None else None,
            dropped_oldest=counters.dropped_oldest,
            coalesced=counters.coalesced,
            slow_consumers=counters.slow_consumers,
            by_room=by_room,
            owned_rooms=sum(1 for slot in self._slots.values() if slot.owned and not slot.stopping),
            relayed_rooms=len(self._relayed),
            relayed_sessions=self._relayed.total(),
            parked_sessions=counters.parked,
            parks=counters.parks,
        )

    async def admit(self, request: ConnectRequest) -> None:
        """Check a handshake before its upgrade; the caller has counted its connection.

        Raises:
            HttpRejection: 403 for an origin off the allow-list; 503 over a connection
                cap, for a full room, a new room past ``max_rooms`` or a slow
                ``authorize``; ``authorize``'s `Reject` status; 500 if ``authorize``
                failed.
        """
        config = self.config
        # Without an allow-list every origin passes: the header is not looked for.
        origin = request.header("origin") if config.allowed_origins is not None else None
        self.check_client(origin, request.client)
        self._check_room_capacity(request.room)
        room_class = self.room_class
        waited = room_class is None
        if room_class is None:  # a factory we cannot see through: the room tells its class
            room_class = type(await self._get_for_admission(request.room))
        session_class = room_class.session_class
        assert session_class is not None
        if session_class.authorize.__func__ is not _LET_IN:  # no deadline to let all in
            waited = True
            try:
                with trio.fail_after(config.handshake_timeout):
                    await session_class.authorize(request)
            except Reject as reject:
                raise HttpRejection(reject.status, reject.reason) from None
            except trio.TooSlowError:
                _logger.warning("authorize() timed out in room %r", request.room)
                raise HttpRejection(503, "Service Unavailable: authorization timed out") from None
            except Exception:
                _logger.exception("authorize() failed in room %r", request.room)
                raise HttpRejection(500, "Internal Server Error") from None
        if waited:  # for the room, or for authorize: the room may have filled meanwhile
            self._check_room_capacity(request.room)
        if self._running(request.room) is not None:
            return
        # Made before the upgrade, so that a client that got its 101 is admitted right
        # after it, ahead of any connection that came later. A room that fails to start
        # is reported after the upgrade (1011), as its serving tries again.
        with contextlib.suppress(HttpRejection):
            await self._get_for_admission(request.room, log=False)

    def check_client(self, origin: str | None, client: tuple[str, int] | None) -> None:
        """Check a handshake's or a route request's origin, then the connection caps.

        The caller has counted the connection (or the route request) already.

        Raises:
            HttpRejection: 403 for an origin off the allow-list, 503 over a connection cap.
        """
        if not origin_allowed(origin, self.config.allowed_origins):
            raise HttpRejection(403, "Forbidden: this origin is not allowed")
        address = client[0] if client is not None else None
        over = self.connections.over_cap(address)
        if over is not None:
            raise HttpRejection(503, f"Service Unavailable: {over}")

    async def _get_for_admission(self, name: str, *, log: bool = True) -> Room[Any]:
        try:
            return await self.get(name)
        except RoomsClosedError:
            raise HttpRejection(503, "Service Unavailable: the server is shutting down") from None
        except (TooManyRoomsError, OwnedElsewhereError, BackplaneError) as exc:
            raise HttpRejection(503, f"Service Unavailable: {exc}") from None
        except Exception:
            if log:
                _logger.exception("room %r failed to start", name)
            raise HttpRejection(500, "Internal Server Error") from None

    def _check_room_capacity(self, name: str) -> None:
        slot = self._slots.get(name)
        max_rooms = self.config.max_rooms
        if slot is None and len(self._slots) >= max_rooms and not self._stopping:
            raise HttpRejection(503, f"Service Unavailable: {TooManyRoomsError(max_rooms)}")
        limit = self.config.max_sessions_per_room
        room = slot.room if slot is not None else None
        if limit is not None and room is not None and room_runner_of(room).active >= limit:
            raise HttpRejection(503, f"Service Unavailable: room {name!r} is full")

    def deliver(self, room: str, payload: bytes) -> None:
        """A broadcast from another node: deliver it if ``room`` is live here."""
        slot = self._slots.get(room)
        if slot is not None and slot.room is not None and not slot.stopping:
            room_runner_of(slot.room).deliver(payload)

    async def place(
        self, name: str, request: ConnectRequest, wire: WireFormat, connection: Connection
    ) -> Placed | tuple[int, str]:
        """A session for ``connection`` in room ``name``, or its close if it ended here.

        A session of a room of this node is admitted (`RoomRunner.admit`) and returned
        for the caller to run at once, in its frame (one coroutine less per session).
        With a cluster, a session of a room another node owns is relayed there until it
        ends; while the room has no owner that answers (its owner died and its lease has
        not lapsed yet), this node tries to take it every `OWNER_RETRY` seconds, for up to
        ``handshake_timeout``, before closing with 1013 (try again later). A relayed
        session whose owner is lost is moved the same way to the next owner, this node
        or another, without its client reconnecting (`MovableConnection`); if none
        answers within the cluster's ``move_timeout`` (or ``handshake_timeout``, if
        shorter), the client is closed with 1012 and resumes by itself.
        """
        deadline = trio.current_time() + self.config.handshake_timeout
        movable: MovableConnection | None = None
        while True:
            served: Connection = connection if movable is None else movable
            asked = request if movable is None else movable.request()
            try:
                room = await self.get(name)
            except TooManyRoomsError:
                # Other rooms were created between the admission check and the upgrade.
                await self._close(served, 1013, "too many rooms")
                return 1013, "too many rooms"
            except (OwnedElsewhereError, BackplaneError) as exc:
                elsewhere = isinstance(exc, OwnedElsewhereError)
            else:
                runner = room_runner_of(room)
                admitted = await runner.admit(asked, wire, served)
                if isinstance(admitted, tuple):
                    return admitted
                return Placed(admitted, runner, served)
            # Out of the except block: a relayed session runs for its whole life here,
            # and the error's traceback holds the room that failed to start (its
            # runner, state and frames), a few hundred objects per relayed session.
            cluster = self._cluster
            if cluster is not None and elsewhere:
                if movable is None:
                    # Relayed from now on: its session may have to move, so every
                    # frame the client is written from here on is counted.
                    movable = MovableConnection(
                        connection, request, self.config.inbound_max_messages
                    )
                    asked = movable.request()
                relayed = await self._relay(cluster, name, asked, wire, movable)
                if isinstance(relayed, OwnerLost):
                    if not movable.movable:
                        await self._close(movable, *_OWNER_LOST)
                        return _OWNER_LOST
                    _logger.info("room %r: moving a session: %s", name, relayed.why)
                    movable.unread(relayed.unsent)
                    wait = min(self.config.handshake_timeout, cluster.move_timeout)
                    deadline = trio.current_time() + wait
                    continue
                if relayed is not None:
                    return relayed
            if trio.current_time() >= deadline:
                ended = _OWNER_LOST if movable is not None and movable.movable else _NO_OWNER
                await self._close(served, *ended)
                return ended
            if movable is None:
                await trio.sleep(OWNER_RETRY)  # sync-ok: its lease lapses on Redis's clock
            elif (left := await movable.wait_left(OWNER_RETRY)) is not None:
                # Gone while no owner served it: not moved, so its token stays its own.
                if not left.by_peer:
                    await self._close(movable, left.code, left.reason)
                return left.code, left.reason

    async def _relay(
        self,
        cluster: Cluster,
        name: str,
        request: ConnectRequest,
        wire: WireFormat,
        connection: Connection,
    ) -> tuple[int, str] | OwnerLost | None:
        """`Cluster.relay`, counted in `statistics` while it runs."""
        relayed = self._relayed
        relayed[name] += 1
        self.counters.changed()
        try:
            return await cluster.relay(name, request, wire, connection, self.config)
        finally:
            relayed[name] -= 1
            if not relayed[name]:
                del relayed[name]
            self.counters.changed()

    async def _close(self, connection: Connection, code: int, reason: str) -> None:
        """Close a client no session serves, within ``close_timeout``."""
        await close_within(connection, code, reason, self.config.close_timeout)

    async def admit_relayed(
        self, name: str, request: ConnectRequest, wire: WireFormat, connection: Connection
    ) -> Placed | tuple[int, str] | None:
        """Admit a session another node relays to this one, as `place` would a local one:
        the caller runs it (`Placed.run`) in its own task.

        Returns None, before touching ``connection``, if this node does not own the room
        (it never relays a relayed session on); the close instead, if the session ended
        in its admission. Whatever goes wrong ends that session.
        """
        try:
            room = await self.get(name)
        except (OwnedElsewhereError, BackplaneError):
            return None
        except (TooManyRoomsError, RoomsClosedError) as exc:
            code, reason = (1013, "too many rooms") if isinstance(exc, TooManyRoomsError) else _DOWN
            await self._close(connection, code, reason)
            return code, reason
        except Exception:
            _logger.exception("room %r failed to start for a relayed session", name)
            await self._close(connection, 1011, "room failed to start")
            return 1011, "room failed to start"
        runner = room_runner_of(room)
        try:
            admitted = await runner.admit(request, wire, connection)
        except RoomsClosedError:
            await self._close(connection, *_DOWN)
            return _DOWN
        if isinstance(admitted, tuple):
            return admitted
        return Placed(admitted, runner, connection)

    async def answer_relayed(self, request: HttpRequest) -> Response | None:
        """Answer a route request another node relays to this one, as `serve_http` would.

        Returns None if this node does not own the room (it never relays a relayed
        request on).
        """
        path = route_path(self.config.prefix, request)
        try:
            return await answer_route(self.get, self.room_class, self.records, request, path)
        except (OwnedElsewhereError, BackplaneError):
            return None

    async def _run_room(
        self, name: str, slot: _Slot, *, task_status: trio.TaskStatus[Room[Any]]
    ) -> None:
        room = self._factory(name)
        runner = room_runner_of(room)
        runner.bind(
            config=self.config,
            counters=self.counters,
            storage=self._storage,
            backplane=self._backplane,
            node_id=self._node_id,
        )
        runner.alarms.bind(self.alarms, max_name_length=self.config.max_alarm_name_length)
        owned: OwnedRoom | None = None
        try:
            owned = await self._own(name, runner)
            slot.owned = owned is not None
            async with trio.open_nursery() as nursery:
                runner.nursery = nursery
                nursery.start_soon(runner.state.run_committer, self._on_storage_failure(runner))
                nursery.start_soon(runner.own_sessions)
                if owned is not None:
                    nursery.start_soon(_stop_when_lost, runner, owned)
                await runner.alarms.load()
                await runner.log.load()
                async with runner.gate:
                    await room.on_start()
                await runner.state.flush()  # what on_start stored is in before any session
                slot.room = room
                self.counters.changed()
                task_status.started(room)
                await self._wait_idle(runner)
                slot.stopping = runner.stopping = True
                self._stopping.add(slot)
                self.counters.changed()
                if not runner.broken:  # a broken room's memory is not to be trusted
                    await self._stop_room(room)
                nursery.cancel_scope.cancel()
        finally:
            if owned is not None:
                if slot.room is None:  # it failed to start while this node held it
                    self._remember_failed(name, owned.token)
                with trio.CancelScope(shield=True):
                    await _release(name, owned)
            elif slot.room is None and runner.state.fence:  # failed with its writer token
                self._remember_failed(name, runner.state.fence)
            self._stopping.discard(slot)
            slot.stopped.set()
            if self._slots.get(name) is slot:
                del self._slots[name]
            self.counters.changed()

    def _failed_fence(self, name: str) -> int:
        return self._failed_fences.pop(name, 0)

    def _remember_failed(self, name: str, token: int) -> None:
        fences = self._failed_fences
        fences.pop(name, None)
        fences[name] = token
        if len(fences) > self.config.max_rooms:
            del fences[next(iter(fences))]

    async def _own(self, name: str, runner: RoomRunner) -> OwnedRoom | None:
        """With a cluster: take the room's lease and raise its fence, before it starts.

        Without one, take a writer token instead (`_take_writer`).

        Raises:
            OwnedElsewhereError: another node holds the lease.
            OwnershipLostError: a newer owner raised the fence meanwhile.
        """
        cluster = self._cluster
        if cluster is None:
            await self._take_writer(name, runner)
            return None
        owned = await cluster.acquire(name)
        if owned is None:
            raise OwnedElsewhereError(name)
        try:
            # An empty fenced commit: from here on no older owner's write lands, and
            # on_start reads what the last one committed.
            await self._storage.commit(Commit(room=name, fence=owned.token))
        except BaseException:
            with trio.CancelScope(shield=True):
                await _release(name, owned)
            raise
        runner.state.fence = owned.token
        if isinstance(cluster, RoutesCommits):
            runner.state.route = cluster.commit_route
        return owned

    async def _take_writer(self, name: str, runner: RoomRunner) -> None:
        """Single-node: make this process the room's only writer in its storage.

        A storage that several processes can share (`FencedStorage`: SQLite, Redis)
        raises the room's fence, and the room writes with that token from here on: a
        copy of the room that another process started earlier on the same storage has
        its next write refused (and stops), so two copies never mix their replay logs,
        records and values. With a backplane every node runs a copy of the room on
        purpose: nothing is fenced.
        """
        storage = self._storage
        if self._backplane is not None or not isinstance(storage, FencedStorage):
            return
        runner.state.fence = await storage.raise_fence(name)

    def _on_storage_failure(self, runner: RoomRunner) -> Callable[[StorageError], None]:
        """What the room's committer calls once a write of the room failed for good."""
        if self._cluster is not None or not runner.state.fence:
            return runner.storage_failed  # a deposed owner: a cluster's daily business

        def failed(error: StorageError) -> None:
            if isinstance(error, OwnershipLostError):
                # Only ever a misconfiguration, or an overlap in a restart: said loudly.
                _logger.error(
                    "room %r: another process took over this room's storage, so this "
                    "copy of the room stops and closes its sessions (1012): several "
                    "servers share one storage without cluster= (see README, "
                    '"Persistence and resume"): %s',
                    runner.name,
                    error,
                )
            runner.storage_failed(error)

        return failed

    async def _wait_idle(self, runner: RoomRunner) -> None:
        """Return once the room has had no session (nor alarm firing) for ``room_idle_timeout``.

        At shutdown the room's sessions are closing: return as soon as they have ended.
        """
        while True:
            with trio.CancelScope() as scope:
                runner.idle_scope = scope
                if runner.idle:
                    scope.deadline = trio.current_time() + runner.idle_delay()
                await trio.sleep_forever()
            runner.idle_scope = None
            if runner.idle:
                return

    async def _stop_room(self, room: Room[Any]) -> None:
        runner = room_runner_of(room)
        try:
            async with runner.gate:
                await room.on_stop()
        except Exception:
            _logger.exception("on_stop failed in room %r", room.name)
        with contextlib.suppress(StorageError):  # logged by the committer when it failed
            await runner.state.flush()

    async def evict(self, name: str) -> None:
        """Stop the room ``name`` now, as its idle timeout would: ``on_stop``, then gone.

        Returns once it has stopped; at once if it is not live.

        Raises:
            RuntimeError: the room has sessions, or an alarm is firing in it.
        """
        slot = self._slots.get(name)
        if slot is None:
            await trio.lowlevel.checkpoint()
            return
        await slot.ready.wait()
        room = slot.room
        if room is not None and not slot.stopping:
            runner = room_runner_of(room)
            if not runner.idle:
                raise RuntimeError(
                    f"room {name!r} is not idle: it has {runner.active} sessions or an alarm firing"
                )
            assert runner.idle_scope is not None  # a started room waits to be idle
            runner.idle_scope.cancel()
        await slot.stopped.wait()

    async def shutdown(self) -> None:
        """Close every session with 1001, then stop every room (``on_stop``).

        Returns after ``shutdown_timeout`` at the latest; the caller cancels what is left.
        """
        self._closing = True
        self.alarms.stop()  # an alarm firing is cancelled: it fires again after the restart
        for slot in tuple(self._slots.values()):
            room = slot.room
            if room is None:
                continue
            runner = room_runner_of(room)
            runner.stopping = True
            for session in tuple(runner.runners.values()):
                session.begin_close(1001, "server shutting down")
            if runner.idle_scope is not None and runner.idle:
                runner.idle_scope.deadline = trio.current_time()
        with trio.move_on_after(self.config.shutdown_timeout):
            for slot in tuple(self._slots.values()):
                await slot.stopped.wait()


def room_statistics(runner: RoomRunner) -> RoomStatistics:
    """A snapshot of one live room: its sessions, their queues, its policies' counts."""
    queues = [session.outbound for session in runner.runners.values()]
    counters = runner.delivery_counters
    return RoomStatistics(
        sessions=len(queues),
        queued_frames=sum(map(len, queues)),
        queued_bytes=sum(queue.queued_bytes for queue in queues),
        dropped_oldest=counters.dropped_oldest,
        coalesced=counters.coalesced,
        slow_consumers=counters.slow_consumers,
    )


async def _stop_when_lost(runner: RoomRunner, owned: OwnedRoom) -> None:
    """Stop the room at once when its lease ends while it runs (lapsed or taken)."""
    await owned.ended.wait()
    runner.lose_ownership(OwnershipLostError(runner.name, owned.token))


async def _release(name: str, owned: OwnedRoom) -> None:
    try:
        await owned.release()
    except BackplaneError as exc:  # it lapses in Redis within its ttl all the same
        _logger.warning("room %r: its lease was not given back: %s", name, exc)
