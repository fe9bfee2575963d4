"""``Rooms`` and ``open_rooms``: the registry that owns every live room."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar, final

import attrs
import trio

from .._errors import RoomsClosedError, TooManyRoomsError
from ..codec import WireFormat
from ..codec._record import JsonRecords
from .admission import ConnectionCounter, Reject
from .backplane import Backplane
from .config import RoomsConfig, validate_room_name
from .connection import Connection
from .memory import MemoryStorage
from .origins import origin_allowed
from .request import ConnectRequest
from .room import Room, room_class_of, room_runner_of
from .room_runner import RoomRunner
from .routes import route_table
from .routing import HttpRejection
from .stats import Counters, RoomsStatistics
from .storage import Storage

__all__ = ["Rooms", "open_rooms"]

_logger = logging.getLogger("trio_rooms")

RoomT = TypeVar("RoomT", bound=Room[Any])
RoomT_co = TypeVar("RoomT_co", bound=Room[Any], covariant=True)


@final
class _Slot:
    """A name's place in the registry: its room while starting, running and stopping."""

    __slots__ = ("ready", "room", "stopped", "stopping")

    def __init__(self) -> None:
        self.room: Room[Any] | None = None
        self.ready = trio.Event()
        self.stopped = trio.Event()
        self.stopping = False


@final
class Rooms(Generic[RoomT_co]):
    """The live rooms of one `open_rooms` block, created on demand by name.

    Created by `open_rooms`, which owns the nursery every room runs in.
    """

    def __init__(
        self,
        factory: Callable[[str], RoomT_co],
        config: RoomsConfig,
        nursery: trio.Nursery,
        storage: Storage,
        backplane: Backplane | None = None,
    ) -> None:
        self._factory = factory
        self._config = config
        self._nursery = nursery
        self._storage = storage
        self._backplane = backplane
        #: Tells this node's broadcasts apart from other nodes' on the backplane.
        self._node_id = secrets.token_hex(8)
        self._counters = Counters()
        self._connections = ConnectionCounter(
            config.max_connections, config.max_connections_per_address, self._counters.changed
        )
        self._room_class = room_class_of(factory)
        if self._room_class is not None:
            route_table(self._room_class)  # a route declared wrongly fails here, not at a request
        #: Route bodies and results, with the rooms' wire options.
        self._records = JsonRecords(
            camel_case=config.camel_case, forbid_extra_keys=config.forbid_extra_keys
        )
        self._slots: dict[str, _Slot] = {}
        self._closing = False

    @property
    def config(self) -> RoomsConfig:
        """The limits and options every room and transport of this `Rooms` uses."""
        return self._config

    async def get(self, name: str) -> RoomT_co:
        """The live room called ``name``, created (and its ``on_start`` awaited) if needed.

        Concurrent calls for one name share one room. A room that is being evicted is
        waited for and then created anew.

        Raises:
            RoomNameError: ``name`` is not a valid room name.
            RoomsClosedError: the `Rooms` is shutting down.
            TooManyRoomsError: the room would be created while ``config.max_rooms``
                rooms are live (starting and stopping ones count).
            Exception: whatever the room's factory or ``on_start`` raised.
        """
        validate_room_name(name)
        while True:
            if self._closing:
                raise RoomsClosedError("rooms are shutting down")
            slot = self._slots.get(name)
            if slot is None:
                # Counted and taken with no checkpoint between: concurrent creations
                # cannot pass the cap together.
                if len(self._slots) >= self._config.max_rooms:
                    raise TooManyRoomsError(self._config.max_rooms)
                slot = self._slots[name] = _Slot()
                try:
                    room: RoomT_co = await self._nursery.start(self._run_room, name, slot)
                finally:
                    slot.ready.set()
                    if slot.room is None and self._slots.get(name) is slot:
                        del self._slots[name]
                if not slot.stopping:
                    return room
                continue  # idle and evicted before this task ran again: make it anew
            if slot.stopping:
                await slot.stopped.wait()
            elif slot.room is None:
                await slot.ready.wait()
            else:
                return slot.room  # pyright: ignore[reportReturnType] - slots hold this factory's rooms

    def statistics(self) -> RoomsStatistics:
        """A snapshot of the rooms, sessions, queues and message counters."""
        rooms = [slot.room for slot in self._slots.values() if slot.room and not slot.stopping]
        runners = [runner for room in rooms for runner in room_runner_of(room).runners.values()]
        counters = self._counters
        return RoomsStatistics(
            rooms=len(rooms),
            sessions=len(runners),
            queued_bytes=sum(runner.outbound.queued_bytes for runner in runners),
            messages_in=counters.messages_in,
            messages_out=counters.messages_out,
            dropped=counters.dropped,
            invalid=counters.invalid,
            rate_limited=counters.rate_limited,
            connections=self._connections.total,
            errors=counters.errors,
            closes=dict(counters.closes),
            backplane=self._backplane.statistics() if self._backplane is not None else None,
        )

    async def wait_statistics(
        self, predicate: Callable[[RoomsStatistics], bool]
    ) -> RoomsStatistics:
        """Wait until ``predicate(self.statistics())`` is true; return that snapshot.

        ::

            await rooms.wait_statistics(lambda stats: stats.connections == 0)

        The predicate is checked at once, then each time a connection opens or closes,
        a session is admitted or ends, or a room starts or stops: the message counters
        (``messages_in``, ``messages_out``, ``queued_bytes`` ...) do not wake it by
        themselves. Cancel it (``trio.fail_after``) to bound the wait.
        """
        while True:
            snapshot = self.statistics()
            if predicate(snapshot):
                return snapshot
            await self._counters.wait_changed()

    async def _admit(self, request: ConnectRequest) -> None:
        """Check a handshake before its upgrade; the caller has counted its connection.

        Raises:
            HttpRejection: 403 for an origin off the allow-list; 503 over a connection
                cap, for a full room, a new room past ``max_rooms`` or a slow
                ``authorize``; ``authorize``'s `Reject` status; 500 if ``authorize``
                failed.
        """
        config = self._config
        self._check_client(request.header("origin"), request.client)
        self._check_room_capacity(request.room)
        room_class = self._room_class
        if room_class is None:  # a factory we cannot see through: the room tells its class
            room_class = type(await self._get_for_admission(request.room))
        session_class = room_class.session_class
        assert session_class is not None
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
        self._check_room_capacity(request.room)  # authorize may have waited

    def _check_client(self, origin: str | None, client: tuple[str, int] | None) -> None:
        """Check a handshake's or a route request's origin, then the connection caps.

        The caller has counted the connection (or the route request) already.

        Raises:
            HttpRejection: 403 for an origin off the allow-list, 503 over a connection cap.
        """
        if not origin_allowed(origin, self._config.allowed_origins):
            raise HttpRejection(403, "Forbidden: this origin is not allowed")
        address = client[0] if client is not None else None
        over = self._connections.over_cap(address)
        if over is not None:
            raise HttpRejection(503, f"Service Unavailable: {over}")

    async def _get_for_admission(self, name: str) -> Room[Any]:
        try:
            return await self.get(name)
        except RoomsClosedError:
            raise HttpRejection(503, "Service Unavailable: the server is shutting down") from None
        except TooManyRoomsError as exc:
            raise HttpRejection(503, f"Service Unavailable: {exc}") from None
        except Exception:
            _logger.exception("room %r failed to start", name)
            raise HttpRejection(500, "Internal Server Error") from None

    def _check_room_capacity(self, name: str) -> None:
        slot = self._slots.get(name)
        max_rooms = self._config.max_rooms
        if slot is None and len(self._slots) >= max_rooms:
            raise HttpRejection(503, f"Service Unavailable: {TooManyRoomsError(max_rooms)}")
        limit = self._config.max_sessions_per_room
        room = slot.room if slot is not None else None
        if limit is not None and room is not None and room_runner_of(room).active >= limit:
            raise HttpRejection(503, f"Service Unavailable: room {name!r} is full")

    def _deliver(self, room: str, payload: bytes) -> None:
        """A broadcast from another node: deliver it if ``room`` is live here."""
        slot = self._slots.get(room)
        if slot is not None and slot.room is not None and not slot.stopping:
            room_runner_of(slot.room).deliver(payload)

    async def _serve(
        self, name: str, request: ConnectRequest, wire: WireFormat, connection: Connection
    ) -> tuple[int, str]:
        """Run a session for ``connection`` in room ``name`` until it ends: its close."""
        try:
            room = await self.get(name)
        except TooManyRoomsError:
            # Other rooms were created between the admission check and the upgrade.
            await connection.close(1013, "too many rooms")
            return 1013, "too many rooms"
        return await room_runner_of(room).serve(request, wire, connection)

    async def _run_room(
        self, name: str, slot: _Slot, *, task_status: trio.TaskStatus[Room[Any]]
    ) -> None:
        room = self._factory(name)
        runner = room_runner_of(room)
        runner.bind(
            config=self._config,
            counters=self._counters,
            storage=self._storage,
            backplane=self._backplane,
            node_id=self._node_id,
        )
        try:
            async with trio.open_nursery() as nursery:
                runner.nursery = nursery
                await room.on_start()
                slot.room = room
                self._counters.changed()
                task_status.started(room)
                await self._wait_idle(runner)
                slot.stopping = runner.stopping = True
                self._counters.changed()
                await self._stop_room(room)
                nursery.cancel_scope.cancel()
        finally:
            slot.stopped.set()
            if self._slots.get(name) is slot:
                del self._slots[name]
            self._counters.changed()

    async def _wait_idle(self, runner: RoomRunner) -> None:
        """Return once the room has had no session for ``room_idle_timeout``.

        At shutdown the room's sessions are closing: return as soon as they have ended.
        """
        while True:
            with trio.CancelScope() as scope:
                runner.idle_scope = scope
                if runner.active == 0:
                    scope.deadline = trio.current_time() + runner.idle_delay()
                await trio.sleep_forever()
            runner.idle_scope = None
            if runner.active == 0:
                return

    async def _stop_room(self, room: Room[Any]) -> None:
        try:
            await room.on_stop()
        except Exception:
            _logger.exception("on_stop failed in room %r", room.name)

    async def _shutdown(self) -> None:
        """Close every session with 1001, then stop every room (``on_stop``).

        Returns after ``shutdown_timeout`` at the latest; the caller cancels what is left.
        """
        self._closing = True
        for slot in tuple(self._slots.values()):
            room = slot.room
            if room is None:
                continue
            runner = room_runner_of(room)
            runner.stopping = True
            for session in tuple(runner.runners.values()):
                session.begin_close(1001, "server shutting down")
            if runner.idle_scope is not None and runner.active == 0:
                runner.idle_scope.deadline = trio.current_time()
        with trio.move_on_after(self._config.shutdown_timeout):
            for slot in tuple(self._slots.values()):
                await slot.stopped.wait()


@asynccontextmanager
async def open_rooms(
    factory: Callable[[str], RoomT],
    *,
    config: RoomsConfig | None = None,
    storage: Storage | None = None,
    backplane: Backplane | None = None,
) -> AsyncGenerator[Rooms[RoomT]]:
    """Own every room created through the returned `Rooms`.

    ::

        async with trio_rooms.open_rooms(ChatRoom) as rooms, trio.open_nursery() as nursery:
            port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)

    Leaving the block (normally, by an exception or by cancellation, also of a scope
    around it) shuts down gracefully: no new room or session is accepted, every session
    is closed with 1001 and its ``on_close`` runs, then every room's ``on_stop``, then
    the storage is flushed and closed; whatever is still running after
    ``config.shutdown_timeout`` is cancelled.

    Args:
        factory: Makes a room from its name: a `Room` subclass or any callable.
        config: Limits and options; `RoomsConfig()` by default.
        storage: Where session data and room state persist; `MemoryStorage()` by default.
        backplane: Carries broadcasts and membership to the other nodes serving the
            same rooms (``RedisBackplane``); None for a single node.

    Raises:
        TypeError: ``factory`` is a room class (or a ``functools.partial`` of one)
            whose HTTP routes are declared wrongly.
    """
    storage = storage if storage is not None else MemoryStorage()
    await storage.open()
    try:
        async with trio.open_nursery() as outer:
            # The rooms run in a task of their own under a shielded scope: cancelling the
            # caller must not cut sessions off before they were sent their 1001.
            root: _Root = await outer.start(_run_root)
            rooms = Rooms(factory, config or RoomsConfig(), root.nursery, storage, backplane)
            if backplane is not None:
                await root.nursery.start(backplane.run, _Delivery(rooms))
            try:
                yield rooms
            finally:
                with trio.CancelScope(shield=True):
                    await rooms._shutdown()  # pyright: ignore[reportPrivateUsage] - the rooms' own plumbing
                root.scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await storage.aclose()


@final
@attrs.frozen
class _Delivery:
    """What a backplane delivers into: the `Rooms` of this node."""

    rooms: Rooms[Any]

    def deliver(self, room: str, payload: bytes) -> None:
        self.rooms._deliver(room, payload)  # pyright: ignore[reportPrivateUsage] - the rooms' own plumbing


@final
@attrs.frozen
class _Root:
    scope: trio.CancelScope
    nursery: trio.Nursery


async def _run_root(*, task_status: trio.TaskStatus[_Root]) -> None:
    with trio.CancelScope(shield=True) as scope:
        async with trio.open_nursery() as nursery:
            task_status.started(_Root(scope, nursery))
            await trio.sleep_forever()
