"""`Leases`: this node's leases on room names in Redis, taken, kept alive and given back.

At most one node holds a room's lease at a time (`_lease_scripts`). A holder renews all
its leases every ``ttl / 3`` in one script call, and counts a lease as its own only until
``ttl * (1 - safety)`` after it *sent* the last confirmed renewal: Redis started the
key's ``ttl`` later than that, so the holder gives a lease up locally (``ended``) before
Redis can let another node take it, whatever the delay of the network, without comparing
clocks. A holder that stops answering (paused, cut off from Redis) therefore gives up on
time; the fencing token is for what it still wrote on the way (the storage refuses a
write whose token is older than the room's newest).

Except while Redis cannot be reached at all (connection errors and timeouts, not a reply
that refuses: `unreachable`): then nobody can take a lease either, so a lease whose room
``keeps`` says may stay (no relayed session: those cannot be served without Redis) is
kept past its deadline. Once Redis answers again, every lease is reclaimed at once, with
its token (`RECLAIM_SHA`), before anything else is done: the ones another node took
meanwhile end then.

Beside its leases, each node keeps a record of its own, ``{prefix}node:{node_id}``,
written at every renewal with a lease's lifetime: what other nodes must know of it before
they relay to it (`RedisCluster`: its relay protocol's version).

The base of single ownership (one live room per name across nodes): `RedisCluster`
takes a room's lease before the room starts here.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from typing import NoReturn, final

import trio
from coredis.connection import BaseConnection
from coredis.typing import ResponseType

from .._errors import BackplaneError
from ._connection import (
    FAULTS,
    client_name,
    first_leaf,
    open_connection,
    round_trips,
    unreachable,
)
from ._lease_scripts import (
    ACQUIRE_SHA,
    RECLAIM_SHA,
    RELEASE_SHA,
    RENEW_SHA,
    fence_key,
    lease_key,
    load_lease_scripts,
)

__all__ = ["Lease", "Leases"]

_logger = logging.getLogger("trio_rooms")


@final
class Lease:
    """One room's lease, this node's until `ended` is set.

    ``token`` grows with every acquisition of the room by any node: the fencing token
    its writes carry.
    """

    __slots__ = ("ended", "kept", "room", "token", "valid_until", "value")

    def __init__(self, room: str, token: int, value: bytes, valid_until: float) -> None:
        self.room = room
        self.token = token
        #: Set once the lease is not this node's any more: released, lapsed, or taken.
        self.ended = trio.Event()
        #: The lease key's value in Redis.
        self.value = value
        #: When this node stops counting the lease as its own (`trio.current_time`).
        self.valid_until = valid_until
        #: Kept past ``valid_until`` while Redis cannot be reached, until reclaimed.
        self.kept = False

    @property
    def valid(self) -> bool:
        """Whether the lease is still this node's (read the clock; no I/O)."""
        if self.ended.is_set():
            return False
        return self.kept or trio.current_time() < self.valid_until


@final
class Leases:
    """Take, keep and give back leases on room names, for one node, in Redis at ``url``.

    `run` owns the connection: until it runs and is connected, `acquire` and `release`
    raise `BackplaneError`.

    Args:
        url: Redis's address.
        node_id: This node's id in the leases it holds (random by default).
        prefix: Starts every key.
        ttl: Seconds a lease lasts in Redis after its last renewal.
        timeout: Bound on each round trip to Redis.
        safety: The share of ``ttl`` given up, locally, before Redis's own expiry.
        keeps: Whether a room's lease may be kept past its deadline while Redis cannot
            be reached (never, by default).
        record: What this node's record says (`record_of` reads it).
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        prefix: str = "trio_rooms:",
        ttl: float = 5.0,
        timeout: float = 1.0,
        safety: float = 0.2,
        keeps: Callable[[str], bool] | None = None,
        record: bytes = b"",
    ) -> None:
        if not 0 < safety < 1:
            raise ValueError(f"safety must be between 0 and 1, not {safety!r}")
        if timeout * 3 >= ttl * (1 - safety):
            raise ValueError(
                f"ttl {ttl!r} s leaves too little time for renewals within timeout {timeout!r} s"
            )
        self.node_id = node_id if node_id is not None else secrets.token_hex(8)
        self._url = url
        self._prefix = prefix
        self._ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self._valid_for = ttl * (1 - safety)
        self._timeout = timeout
        self._held: dict[str, Lease] = {}
        #: The run's clock (`run` sets it): `trio.current_time` without looking it up.
        self._now: Callable[[], float] = trio.current_time
        self._keeps = keeps
        self._record = record
        #: Redis could not be reached when last tried: leases ``keeps`` allows are kept.
        self._unreachable = False
        self._changed = trio.Event()
        self._connection: BaseConnection | None = None
        #: Renewal rounds Redis confirmed, for tests and statistics.
        self.renewals = 0
        self._renewed = trio.lowlevel.ParkingLot()

    # ------------------------------------------------------------------ the API

    def held(self) -> list[str]:
        """The rooms whose lease this node holds, sorted."""
        return sorted(self._held)

    def holds(self, room: str) -> bool:
        """Whether ``room``'s lease is this node's now, by the local clock (no I/O).

        `Lease.valid` of the held lease, in fewer calls (every reply of a relayed session
        asks): a lease is in ``_held`` exactly until it ends (`release` and `_end` take it
        out as they set ``ended``), and the clock is the run's own, read without
        `trio.current_time`'s two lookups of it.
        """
        lease = self._held.get(room)
        return lease is not None and (lease.kept or self._now() < lease.valid_until)

    async def acquire(self, room: str) -> Lease | None:
        """Take ``room``'s lease, or return None if another node holds it.

        Returns the lease this node already holds, if it does.

        Raises:
            BackplaneError: Redis is not connected or did not answer in time.
            ValueError: ``room`` is not a valid room name.
        """
        held = self._held.get(room)
        if held is not None:
            await trio.lowlevel.checkpoint()
            return held
        keys = (lease_key(self._prefix, room), fence_key(self._prefix, room))
        sent = trio.current_time()
        reply = await self._call(ACQUIRE_SHA, keys, (self.node_id, self._ttl_ms))
        taken, value = _pair(reply)
        if not taken:
            return None
        held = self._held.get(room)  # taken by a concurrent acquire of ours meanwhile?
        if held is not None:
            return held
        token = int(value)
        lease = Lease(room, token, f"{self.node_id}:{token}".encode(), sent + self._valid_for)
        self._held[room] = lease
        self._wake()
        return lease

    async def owner(self, room: str) -> tuple[str, int] | None:
        """The node holding ``room``'s lease and its token, or None if nobody does.

        Raises:
            BackplaneError: Redis is not connected or did not answer in time.
        """
        connection = self._connected()
        try:
            with trio.fail_after(self._timeout):
                reply = await connection.create_request(b"GET", lease_key(self._prefix, room))
        except (trio.TooSlowError, *FAULTS) as exc:
            raise BackplaneError(f"Redis did not answer: {exc!r}") from exc
        if reply is None:
            return None
        node, _, token = (
            reply.decode(errors="replace").rpartition(":") if isinstance(reply, bytes) else "::"
        )
        if not token.isdigit():  # written by another version, or by hand
            raise BackplaneError(f"room {room!r}'s lease is not node:token, but {reply!r:.60}")
        return node, int(token)

    async def record_of(self, node: str) -> bytes | None:
        """What ``node``'s record says, or None if it has none (gone, or of a version
        that writes none).

        Raises:
            BackplaneError: Redis is not connected or did not answer in time.
        """
        connection = self._connected()
        try:
            with trio.fail_after(self._timeout):
                reply = await connection.create_request(b"GET", self._record_key(node))
        except (trio.TooSlowError, *FAULTS) as exc:
            raise BackplaneError(f"Redis did not answer: {exc!r}") from exc
        return reply if isinstance(reply, bytes) else None

    def _record_key(self, node: str) -> bytes:
        return f"{self._prefix}node:{node}".encode()

    async def _write_record(self, connection: BaseConnection) -> None:
        """Write this node's record, to last as long as a lease: a round trip in any case,
        so that a connection to a Redis that went away is noticed before the next acquire
        needs it."""
        key = self._record_key(self.node_id)
        with trio.fail_after(self._timeout):
            await connection.create_request(b"SET", key, self._record, b"PX", self._ttl_ms)

    async def remaining(self, room: str) -> float:
        """Seconds until ``room``'s lease lapses unless renewed (0: nobody holds it).

        Raises:
            BackplaneError: Redis is not connected or did not answer in time.
        """
        connection = self._connected()
        try:
            with trio.fail_after(self._timeout):
                reply = await connection.create_request(b"PTTL", lease_key(self._prefix, room))
        except (trio.TooSlowError, *FAULTS) as exc:
            raise BackplaneError(f"Redis did not answer: {exc!r}") from exc
        assert isinstance(reply, int)
        return max(reply, 0) / 1000

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` back at once (another node may take it right away).

        Raises:
            BackplaneError: Redis is not connected or did not answer in time; the lease
                ends here all the same and lapses in Redis within its ttl.
        """
        if self._held.get(lease.room) is lease:
            del self._held[lease.room]
        lease.ended.set()
        await self._call(RELEASE_SHA, (lease_key(self._prefix, lease.room),), (lease.value,))

    async def wait_renewed(self) -> None:
        """Wait until Redis has confirmed a renewal round that started after this call."""
        await self._renewed.park()
        await self._renewed.park()  # the round in flight at the call may have started before

    # ------------------------------------------------------------------ running

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Connect, keep every lease alive, and end the lapsed ones; reconnect on faults.

        Ready once the first connection is made.
        """
        ready = False
        self._now = trio.lowlevel.current_clock().current_time
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._end_lapsed)
            delay = self._timeout
            while True:
                try:
                    name = client_name("leases", self.node_id)
                    opened = open_connection(self._url, timeout=self._timeout, name=name)
                    async with opened as connection:
                        await round_trips(connection, load_lease_scripts(), timeout=self._timeout)
                        await self._reclaim(connection)
                        await self._write_record(connection)
                        self._unreachable = False
                        self._connection = connection
                        self._wake()
                        if not ready:
                            ready = True
                            task_status.started()
                        delay = self._timeout
                        await self._renew_forever(connection)
                except* FAULTS as group:  # coredis's pool runs the connection in a group
                    fault = first_leaf(group)
                    _logger.warning("leases: Redis failed, connecting again: %r", fault)
                    self._unreachable = unreachable(group)
                    self._wake()  # a refusal ends the kept leases
                finally:
                    self._connection = None
                await trio.sleep(delay)  # sync-ok: backoff before reconnecting
                delay = min(delay * 2, self._ttl)

    async def _renew_forever(self, connection: BaseConnection) -> NoReturn:
        while True:
            leases = list(self._held.values())
            if leases:
                sent = trio.current_time()
                keys = [lease_key(self._prefix, lease.room) for lease in leases]
                values = [lease.value for lease in leases]
                with trio.fail_after(self._timeout):
                    reply = await connection.create_request(
                        b"EVALSHA", RENEW_SHA, len(keys), *keys, self._ttl_ms, *values
                    )
                assert isinstance(reply, list)
                lost = {int(position) for position in reply if isinstance(position, int)}
                for position, lease in enumerate(leases, start=1):
                    if position in lost:
                        self._end(lease, "lapsed or taken in Redis")
                    elif self._held.get(lease.room) is lease:
                        lease.valid_until = sent + self._valid_for
            await self._write_record(connection)
            self.renewals += 1
            self._renewed.unpark_all()
            await trio.sleep(self._ttl / 3)  # sync-ok: the renewal period itself

    async def _reclaim(self, connection: BaseConnection) -> None:
        """Take every held lease again (kept or not) with its token, as Redis first answers.

        Ends those another node took since (or holds): their rooms stop at once.
        """
        leases = list(self._held.values())
        if not leases:
            return
        sent = trio.current_time()
        keys: list[str] = []
        arguments: list[str | int | bytes] = [self._ttl_ms]
        for lease in leases:
            keys += (lease_key(self._prefix, lease.room), fence_key(self._prefix, lease.room))
            arguments += (lease.value, lease.token)
        with trio.fail_after(self._timeout):
            reply = await connection.create_request(
                b"EVALSHA", RECLAIM_SHA, len(keys), *keys, *arguments
            )
        assert isinstance(reply, list)
        lost = {int(position) for position in reply if isinstance(position, int)}
        for position, lease in enumerate(leases, start=1):
            if position in lost:
                self._end(lease, "another node took it while Redis could not be reached")
            elif self._held.get(lease.room) is lease:
                if lease.kept:
                    _logger.warning("leases: room %r is ours again in Redis", lease.room)
                lease.kept = False
                lease.valid_until = sent + self._valid_for

    async def _end_lapsed(self) -> NoReturn:
        """End each lease at its local deadline, or keep it while Redis cannot be reached."""
        while True:
            deadline = min(
                (lease.valid_until for lease in self._held.values() if not lease.kept),
                default=math.inf,
            )
            with trio.move_on_at(deadline):
                await self._changed.wait()
                self._changed = trio.Event()
            now = trio.current_time()
            for lease in list(self._held.values()):
                if lease.valid_until > now:
                    continue
                if self._unreachable and self._keeps is not None and self._keeps(lease.room):
                    if not lease.kept:
                        lease.kept = True
                        _logger.warning(
                            "leases: keeping room %r past its lease: Redis cannot be reached",
                            lease.room,
                        )
                else:
                    self._end(lease, "not renewed in time")

    # ------------------------------------------------------------------ helpers

    def _end(self, lease: Lease, why: str) -> None:
        if self._held.get(lease.room) is lease:
            del self._held[lease.room]
            _logger.warning("leases: room %r is not ours any more: %s", lease.room, why)
            self._wake()
        lease.ended.set()

    def _wake(self) -> None:
        self._changed.set()

    def _connected(self) -> BaseConnection:
        if self._connection is None:
            raise BackplaneError("the leases have no connection to Redis")
        return self._connection

    async def _call(
        self, sha: str, keys: tuple[str, ...], arguments: tuple[str | int | bytes, ...]
    ) -> ResponseType:
        connection = self._connected()
        try:
            with trio.fail_after(self._timeout):
                return await connection.create_request(
                    b"EVALSHA", sha, len(keys), *keys, *arguments
                )
        except (trio.TooSlowError, *FAULTS) as exc:
            raise BackplaneError(f"Redis did not answer: {exc!r}") from exc


def _pair(reply: ResponseType) -> tuple[bool, bytes | int]:
    assert isinstance(reply, list)
    taken, value = reply
    assert isinstance(taken, int)
    assert isinstance(value, bytes | int)
    return taken == 1, value
