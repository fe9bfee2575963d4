"""Membership: the node's sessions per room, written to Redis and kept alive there.

`Membership` keeps the local truth and the changes not yet written; `take_writes`,
`refresh_writes`, `confirmed`, `lost` and `listed` hold the logic and do no I/O.
Changes are numbered as they are made, so `wait_written` knows when Redis has
confirmed every change made before it.
`Membership.run` owns the commands connection: it loads the scripts, writes every
local member again, then writes changes as they come and refreshes every ``ttl / 3``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import ClassVar, NoReturn, final

import trio
from coredis.commands import CommandRequest
from coredis.connection import BaseConnection
from coredis.typing import ResponseType

from .._errors import BackplaneError
from ._connection import FAULTS, round_trips, watch
from ._scripts import MEMBERS_SHA, REFRESH_SHA, Names, chunks, command, load_scripts

__all__ = ["Membership"]

_Writes = list[CommandRequest[ResponseType]]


class _State(enum.Enum):
    """Whether `Membership.connection` can be asked for the commands connection."""

    STOPPED = enum.auto()  # not running: raise
    CONNECTING = enum.auto()  # the first connection of a run is being made: wait
    CONNECTED = enum.auto()  # here it is
    LOST = enum.auto()  # lost, not made again yet: raise


@final
class Membership:
    """The node's members, the writes that make Redis agree, and the commands connection.

    Args:
        names: The deployment's key names.
        node_hex: This node's id, which starts its entries (``{node_hex}:{session id}``).
        where: Redis's address for errors, without credentials.
        ttl: Seconds an entry stays listed after its last refresh.
        timeout: Bound on each batch of writes.
        max_queue: Changes waiting to be written; beyond it they are dropped and counted.
        changed: Called whenever ``dropped`` changed.
    """

    #: Names its connection in logs.
    name: ClassVar = "commands"

    def __init__(
        self,
        names: Names,
        node_hex: str,
        *,
        where: str,
        ttl: float,
        timeout: float,
        max_queue: int,
        changed: Callable[[], None],
    ) -> None:
        self._names = names
        self._statistics_changed = changed
        self._entry_prefix = node_hex + ":"
        self._where = where
        self._ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self._timeout = timeout
        self._max_queue = max_queue
        # Local truth, and the changes not yet written (True: joined).
        self._local: dict[str, set[str]] = {}
        self._pending: dict[tuple[str, str], bool] = {}
        self._writing: dict[tuple[str, str], bool] = {}
        self._pending_changed = trio.Event()
        # Changes made so far; the first `_taken` of them were in the writes taken last,
        # the first `_written` confirmed by Redis (or dropped).
        self._made = 0
        self._taken = 0
        self._written = 0
        self._written_waiters = trio.lowlevel.ParkingLot()
        self._state = _State.STOPPED
        self._connection: BaseConnection | None = None
        self._state_changed = trio.Event()
        self.dropped = 0

    # ------------------------------------------------------------------ changes

    def join(self, room: str, session_id: str) -> None:
        """List ``session_id`` in ``room`` (written soon, refreshed every ``ttl / 3``)."""
        self._names.members_key(room)
        self._local.setdefault(room, set()).add(session_id)
        self._change(room, session_id, joined=True)

    def leave(self, room: str, session_id: str) -> None:
        """Stop listing ``session_id`` in ``room``."""
        self._names.members_key(room)
        sessions = self._local.get(room)
        if sessions is not None:
            sessions.discard(session_id)
            if not sessions:
                del self._local[room]
        self._change(room, session_id, joined=False)

    def _change(self, room: str, session_id: str, *, joined: bool) -> None:
        self._made += 1
        key = (room, session_id)
        if key not in self._pending and len(self._pending) >= self._max_queue:
            # A dropped join comes back with the next refresh; a dropped leave expires.
            # The pending changes that filled the queue carry its number to `_written`.
            self.dropped += 1
            self._statistics_changed()
            return
        self._pending[key] = joined
        self._pending_changed.set()

    def take_writes(self) -> _Writes:
        """The commands that write the pending changes; they are in flight until `confirmed`."""
        self._writing, self._pending = self._pending, {}
        self._taken = self._made
        joined: dict[str, list[str]] = {}
        left: dict[str, list[str]] = {}
        for (room, session_id), is_join in self._writing.items():
            (joined if is_join else left).setdefault(room, []).append(session_id)
        writes = self._refresh_writes(joined)
        for room, session_ids in left.items():
            key = self._names.members_key(room)
            for chunk in chunks(session_ids):
                members = [self._entry_prefix + session_id for session_id in chunk]
                writes.append(command(b"ZREM", key, *members))
        return writes

    def confirmed(self) -> None:
        """Redis acknowledged the writes `take_writes` returned last."""
        self._writing = {}
        self._written = self._taken
        if self._written_waiters:
            self._written_waiters.unpark_all()

    async def wait_written(self) -> None:
        """Wait until Redis has confirmed every change made before this call.

        A change dropped because ``max_queue`` changes were waiting counts as written
        once the changes ahead of it are. Waits while the connection is lost, until it
        is made again and the changes are written.
        """
        target = self._made
        await trio.lowlevel.checkpoint()  # a checkpoint even when nothing waits
        while self._written < target:
            await self._written_waiters.park()

    def refresh_writes(self) -> _Writes:
        """EVALSHAs that write every local member again with a fresh expiry."""
        return self._refresh_writes(
            {room: list(sessions) for room, sessions in self._local.items()}
        )

    def _refresh_writes(self, members: dict[str, list[str]]) -> _Writes:
        writes: _Writes = []
        for room, session_ids in members.items():
            key = self._names.members_key(room)
            for chunk in chunks(session_ids):
                entries = [self._entry_prefix + session_id for session_id in chunk]
                writes.append(command(b"EVALSHA", REFRESH_SHA, 1, key, self._ttl_ms, *entries))
        return writes

    async def members(self, room: str) -> list[str]:
        """The session ids in ``room`` on every live node, this one's first.

        Raises:
            BackplaneError: the commands connection is lost, or Redis did not answer
                within ``timeout``.
        """
        key = self._names.members_key(room)
        try:
            with trio.fail_after(self._timeout):
                connection = await self.connection()
                reply = await connection.create_request(b"EVALSHA", MEMBERS_SHA, 1, key)
        except trio.TooSlowError as exc:
            raise BackplaneError(
                f"Redis at {self._where} did not answer within {self._timeout} s"
            ) from exc
        except FAULTS as exc:
            raise BackplaneError(f"Redis at {self._where} failed: {exc!r}") from exc
        return self.listed(room, reply)

    def listed(self, room: str, reply: ResponseType) -> list[str]:
        """The session ids in ``room``: this node's, then the others' in ``reply``."""
        if not isinstance(reply, list):
            raise BackplaneError(f"expected a list of members from Redis, got {reply!r}")
        found = dict.fromkeys(self._local.get(room, ()))
        for entry in reply:
            if not isinstance(entry, bytes):
                continue
            node_hex, separator, session_id = entry.decode("utf-8", "replace").partition(":")
            if separator and node_hex + ":" != self._entry_prefix:
                found.setdefault(session_id)
        return list(found)

    # ------------------------------------------------------------------ the connection

    def start(self) -> None:
        """A run begins: `connection` waits for its first connection."""
        self._set_state(_State.CONNECTING, None)

    def stop(self) -> None:
        """The run ended: `connection` raises; the writes in flight are written by the next run."""
        self._requeue(self._writing.items())
        self._writing = {}
        self._set_state(_State.STOPPED, None)

    def lost(self) -> None:
        """The connection is gone: retry the unconfirmed writes, unless newer ones wait.

        Membership writes are idempotent, so writing one twice is harmless.
        """
        self._requeue(self._writing.items())
        self._writing = {}
        if self._state is not _State.STOPPED:
            self._set_state(_State.LOST, None)

    def _requeue(self, changes: Iterable[tuple[tuple[str, str], bool]]) -> None:
        for key, joined in changes:
            if key in self._pending:
                continue
            if len(self._pending) >= self._max_queue:
                self.dropped += 1
                self._statistics_changed()
            else:
                self._pending[key] = joined

    async def connection(self) -> BaseConnection:
        """The commands connection; waits while the first one of a run is being made.

        Raises:
            BackplaneError: not running, or the connection is lost.
        """
        while self._connection is None:
            if self._state is not _State.CONNECTING:
                raise BackplaneError(f"Redis at {self._where} is not connected")
            await self._state_changed.wait()
        return self._connection

    def _set_state(self, state: _State, connection: BaseConnection | None) -> None:
        self._state = state
        self._connection = connection
        self._state_changed.set()
        self._state_changed = trio.Event()

    async def run(self, connection: BaseConnection, *, task_status: trio.TaskStatus[None]) -> None:
        """Write membership on ``connection`` until it is lost (raises then).

        ``started()`` comes once the scripts are loaded and every local member is
        written again; `connection` returns ``connection`` from then on.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, connection)
            await round_trips(connection, load_scripts(), timeout=self._timeout)
            await round_trips(connection, self.refresh_writes(), timeout=self._timeout)
            self._set_state(_State.CONNECTED, connection)
            task_status.started()
            await self._write_forever(connection)

    async def _write_forever(self, connection: BaseConnection) -> NoReturn:
        period = self._ttl / 3
        next_refresh = trio.current_time() + period
        while True:
            with trio.move_on_at(next_refresh):
                while not self._pending:
                    self._pending_changed = trio.Event()
                    await self._pending_changed.wait()
            if self._pending:
                await round_trips(connection, self.take_writes(), timeout=self._timeout)
                self.confirmed()
            if trio.current_time() >= next_refresh:
                next_refresh = trio.current_time() + period
                await round_trips(connection, self.refresh_writes(), timeout=self._timeout)
