"""``Rooms`` and ``open_rooms``: the registry that owns every live room."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar, cast, final

import attrs
import trio

from .backplane import Backplane
from .config import RoomsConfig
from .heap import freeze_heap_once
from .memory import MemoryStorage
from .ownership import Cluster
from .registry import RoomRegistry
from .room import Room
from .stats import RoomsStatistics
from .storage import Storage

__all__ = ["Rooms", "open_rooms", "registry_of"]

RoomT = TypeVar("RoomT", bound=Room[Any])
RoomT_co = TypeVar("RoomT_co", bound=Room[Any], covariant=True)


@final
class Rooms(Generic[RoomT_co]):
    """The live rooms of one `open_rooms` block, created on demand by name.

    Created by `open_rooms`, which owns the nursery every room runs in.
    """

    __slots__ = ("_registry",)

    _registry: RoomRegistry

    def __init__(self) -> None:
        raise TypeError("Rooms is made by trio_rooms.open_rooms()")

    @classmethod
    def _over(cls, registry: RoomRegistry) -> Rooms[Any]:
        # The one constructor, for open_rooms; the registry stays out of the public API.
        rooms = object.__new__(cls)
        rooms._registry = registry
        return rooms

    @property
    def config(self) -> RoomsConfig:
        """The limits and options every room and transport of this `Rooms` uses."""
        return self._registry.config

    async def get(self, name: str) -> RoomT_co:
        """The live room called ``name``, created (and its ``on_start`` awaited) if needed.

        Concurrent calls for one name share one room. A room that is being evicted is
        waited for and then created anew.

        Raises:
            RoomNameError: ``name`` is not a valid room name.
            RoomsClosedError: the `Rooms` is shutting down.
            TooManyRoomsError: the room would be created while ``config.max_rooms``
                rooms are live (starting ones count; at the cap, a room being
                stopped is waited for, so an evicted room makes room at once).
            OwnedElsewhereError: with a cluster, another node holds the room's lease.
            BackplaneError: with a cluster, Redis could not be asked for the lease.
            Exception: whatever the room's factory or ``on_start`` raised.
        """
        # The registry holds only rooms its factory, this one's, made.
        return cast("RoomT_co", await self._registry.get(name))

    def statistics(self) -> RoomsStatistics:
        """A snapshot of the rooms, sessions, queues and message counters."""
        return self._registry.statistics()

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
        registry = self._registry
        while True:
            snapshot = registry.statistics()
            if predicate(snapshot):
                return snapshot
            await registry.counters.wait_changed()


def registry_of(rooms: Rooms[Any]) -> RoomRegistry:
    """The registry behind ``rooms``: the serving port's handle on it."""
    return rooms._registry  # pyright: ignore[reportPrivateUsage] - the one way in, by design


@asynccontextmanager
async def open_rooms(
    factory: Callable[[str], RoomT],
    *,
    config: RoomsConfig | None = None,
    storage: Storage | None = None,
    backplane: Backplane | None = None,
    cluster: Cluster | None = None,
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
        cluster: The single-owner mode (``RedisCluster``): each room runs only on the
            node holding its lease, and clients of the other nodes are served through
            it; not with a backplane.

    Raises:
        TypeError: ``factory`` is a room class (or a ``functools.partial`` of one)
            whose HTTP routes are declared wrongly.
        ValueError: both a backplane and a cluster were given.
    """
    if backplane is not None and cluster is not None:
        raise ValueError("open_rooms takes a backplane or a cluster, not both")
    storage = storage if storage is not None else MemoryStorage()
    await storage.open()
    failed: Exception | None = None
    try:
        async with trio.open_nursery() as outer:
            # The rooms run in a task of their own under a shielded scope: cancelling the
            # caller must not cut sessions off before they were sent their 1001.
            root: _Root = await outer.start(_run_root)
            try:
                registry = RoomRegistry(
                    factory, config or RoomsConfig(), root.nursery, storage, backplane, cluster
                )
                if backplane is not None:
                    await root.nursery.start(backplane.run, _Delivery(registry))
                if cluster is not None:
                    await root.nursery.start(cluster.run, registry)
                await root.nursery.start(registry.alarms.run)
                if registry.config.freeze_heap:
                    freeze_heap_once()
            except Exception as exc:
                # Raised as it is, once the shielded root (which would keep `outer` open
                # for ever) has ended, not inside the nursery's group.
                failed = exc
                root.scope.cancel()
            else:
                try:
                    yield Rooms._over(registry)  # pyright: ignore[reportPrivateUsage] - its constructor
                finally:
                    with trio.CancelScope(shield=True):
                        await registry.shutdown()
                    root.scope.cancel()
        if failed is not None:
            raise failed
    finally:
        with trio.CancelScope(shield=True):
            await storage.aclose()


@final
@attrs.frozen
class _Delivery:
    """What a backplane delivers into: the rooms of this node."""

    registry: RoomRegistry

    def deliver(self, room: str, payload: bytes) -> None:
        self.registry.deliver(room, payload)


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
