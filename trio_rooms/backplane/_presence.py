"""Presence over Redis: this node's presences written in, every node's diffs read out in order.

`RedisPresence` is the backplane's `PresenceSync`, and one more role of the supervisor,
with a connection of its own. Its state does no I/O and is driven by a test as well:

- writing: this node's presences per room (the truth), the changes not yet written
  (bounded), and the rooms to write whole (`SYNC`) because a change was dropped, the
  connection was lost, or Redis had expired the node;
- reading: per watched room, the presences as of diff ``seq`` (the mirror), and the
  diffs that came while the room was being loaded (`LOAD`).

Every ``ttl / 3`` it refreshes the node in each of its rooms and removes the presences
of nodes that were not refreshed for ``ttl`` (`TICK`): a node killed with ``kill -9``
is gone from every node's presence within ``4 / 3 * ttl``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import ClassVar, NoReturn, cast, final

import msgpack
import trio
from coredis.commands import CommandRequest
from coredis.connection import BaseConnection
from coredis.typing import ResponseType

from .._core.presence_sync import PresenceApply, PresenceRecord
from ._connection import BATCH, round_trips, watch
from ._presence_scripts import CHANGE, LOAD, SYNC, TICK, PresenceKeys, load_presence_scripts
from ._scripts import command
from ._subscriber import Subscriber

__all__ = ["RedisPresence"]

_logger = logging.getLogger("trio_rooms")

_Command = CommandRequest[ResponseType]
#: A presence as Redis holds it starts with the id of its node, in hex.
_NODE_HEX = 32
#: One diff as it came: its number, the presences that joined and those that left.
_Diff = tuple[int, list[PresenceRecord], list[PresenceRecord]]


@final
class _Watch:
    """One watched room: what the node knows of it, and where that stands."""

    __slots__ = ("apply", "buffered", "loading", "mirror", "seq")

    def __init__(self, apply: PresenceApply) -> None:
        self.apply = apply
        self.mirror: dict[str, PresenceRecord] = {}
        #: The number of the last diff applied; None until the room is loaded.
        self.seq: int | None = None
        self.loading = False
        self.buffered: list[_Diff] = []


@final
class RedisPresence:
    """The presences of this node's rooms in Redis, and every node's diffs of them.

    Args:
        prefix: The backplane's key prefix.
        node_hex: This node's id, which every presence it writes carries.
        subscriber: Where the rooms' channels are subscribed.
        ttl: Seconds a node's presences outlive its last refresh.
        timeout: Bound on each round trip.
        max_queue: Changes waiting to be written; beyond it the room is written whole.
    """

    #: Names its connection in logs.
    name: ClassVar = "presence"

    def __init__(
        self,
        prefix: str,
        node_hex: str,
        subscriber: Subscriber,
        *,
        ttl: float,
        timeout: float,
        max_queue: int,
    ) -> None:
        self._prefix = prefix
        self._node = node_hex
        self._subscriber = subscriber
        self._ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self._timeout = timeout
        self._max_queue = max_queue
        self._keys: dict[str, PresenceKeys] = {}
        self._packer = msgpack.Packer(use_bin_type=True)
        # Writing.
        self._own: dict[str, dict[str, bytes]] = {}
        self._queue: deque[tuple[str, list[tuple[str, bytes]], list[str]]] = deque()
        self._dirty: set[str] = set()
        #: Rooms where Redis has listed this node since the connection was made: being
        #: added again there means Redis expired it, and its presences with it.
        self._listed: set[str] = set()
        self._connected = False
        # Reading.
        self._watched: dict[str, _Watch] = {}
        self._to_load: set[str] = set()
        self._work = trio.Event()
        #: Diffs applied, and rooms loaded again because a diff was missed.
        self.applied = 0
        self.reloads = 0

    # ------------------------------------------------------------ PresenceSync

    def change(self, room: str, joins: Sequence[PresenceRecord], leaves: Sequence[str]) -> None:
        """Queue this node's change; never blocks (past ``max_queue``, the room is synced)."""
        own = self._own.setdefault(room, {})
        written = [(record.ref, self._pack(record)) for record in joins]
        own.update(written)
        for ref in leaves:
            own.pop(ref, None)
        if not own:
            del self._own[room]
        if not self._connected or room in self._dirty or len(self._queue) >= self._max_queue:
            self._dirty.add(room)  # written whole once connected: nothing is lost
        else:
            self._queue.append((room, written, list(leaves)))
        self._work.set()

    def watch(self, room: str, apply: PresenceApply) -> None:
        """Deliver ``room``'s diffs to ``apply``, from a load of the room on.

        The room is loaded once Redis has confirmed the subscription to its channel (and
        again at each confirmation after a reconnect), so no diff falls between the two.
        """
        keys = self._keys_of(room)
        self._watched[room] = _Watch(apply)
        self._subscriber.subscribe_raw(
            keys.channel, lambda data: self.received(room, data), lambda: self.subscribed(room)
        )

    def subscribed(self, room: str) -> None:
        """Redis confirmed the subscription to ``room``'s channel: load the room."""
        watched = self._watched.get(room)
        if watched is not None:
            watched.loading = False  # a load in flight may predate the subscription
            self._to_load.add(room)
            self._work.set()

    def unwatch(self, room: str) -> None:
        """Deliver nothing more of ``room``."""
        if self._watched.pop(room, None) is not None:
            self._subscriber.unsubscribe_raw(self._keys_of(room).channel)
            self._to_load.discard(room)

    # ----------------------------------------------------------------- reading

    def received(self, room: str, data: bytes) -> None:
        """A diff published on ``room``'s channel: apply it in order, or load the room."""
        watched = self._watched.get(room)
        if watched is None:
            return
        try:
            diff = self._parse_diff(data)
        except ValueError as exc:
            _logger.warning("dropped a presence diff of room %r: %s", room, exc)
            self._load_again(room, watched)
            return
        if watched.loading or watched.seq is None:
            watched.buffered.append(diff)
            return
        self._take(room, watched, diff)

    def _take(self, room: str, watched: _Watch, diff: _Diff) -> None:
        seq, joins, leaves = diff
        assert watched.seq is not None
        if seq <= watched.seq:
            return  # in the load already
        if seq != watched.seq + 1:
            self._load_again(room, watched)  # missed one: the connection dropped it
            return
        watched.seq = seq
        for record in leaves:
            watched.mirror.pop(record.ref, None)
        for record in joins:
            watched.mirror[record.ref] = record
        self.applied += 1
        watched.apply(joins, leaves)

    def _load_again(self, room: str, watched: _Watch) -> None:
        if not watched.loading:
            self.reloads += 1
            self._to_load.add(room)
            self._work.set()

    def loaded(self, room: str, reply: ResponseType) -> None:
        """``LOAD``'s reply: apply what changed since the mirror, then the diffs after it."""
        watched = self._watched.get(room)
        if watched is None:
            return
        watched.loading = False
        if not isinstance(reply, list) or not reply or not isinstance(reply[0], int):
            raise ValueError(f"expected the presence of room {room!r}, got {reply!r}")
        seq, *flat = reply
        found: dict[str, PresenceRecord] = {}
        for ref, packed in zip(flat[::2], flat[1::2], strict=True):
            try:
                record = self._unpack(_bytes(ref), _bytes(packed))
            except ValueError as exc:
                _logger.warning("skipped a presence of room %r: %s", room, exc)
                continue
            found[record.ref] = record
        old = watched.mirror
        leaves = [record for ref, record in old.items() if found.get(ref) != record]
        joins = [record for ref, record in found.items() if old.get(ref) != record]
        watched.mirror = found
        watched.seq = seq
        if joins or leaves:
            watched.apply(joins, leaves)
        buffered, watched.buffered = sorted(watched.buffered, key=lambda diff: diff[0]), []
        for diff in buffered:
            if watched.loading:
                watched.buffered.append(diff)
            else:
                self._take(room, watched, diff)

    def _parse_diff(self, data: bytes) -> _Diff:
        try:
            seq, joins, leaves = msgpack.unpackb(data, raw=True)
            return (
                int(seq),
                [self._unpack(_bytes(ref), _bytes(packed)) for ref, packed in _pairs(joins)],
                [self._unpack(_bytes(ref), _bytes(packed)) for ref, packed in _pairs(leaves)],
            )
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ValueError(f"not a presence diff: {exc}") from exc

    # ------------------------------------------------------------- records

    def _pack(self, record: PresenceRecord) -> bytes:
        return self._node.encode() + self._packer.pack([record.key, record.session_id, record.meta])

    @staticmethod
    def _unpack(ref: bytes, packed: bytes) -> PresenceRecord:
        try:
            key, session_id, meta = msgpack.unpackb(packed[_NODE_HEX:])
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ValueError(f"not a presence: {exc}") from exc
        if not (isinstance(key, str) and isinstance(session_id, str) and isinstance(meta, bytes)):
            raise _MalformedError("not a presence: wrong field types")
        return PresenceRecord(ref.decode(), key, session_id, meta)

    def _keys_of(self, room: str) -> PresenceKeys:
        keys = self._keys.get(room)
        if keys is None:
            keys = self._keys[room] = PresenceKeys(self._prefix, room)
        return keys

    # ------------------------------------------------------------- the role

    def take_writes(self) -> list[tuple[str, str, _Command]]:
        """The writes and loads to make now, each with its kind and room."""
        writes: list[tuple[str, str, _Command]] = []
        dirty, self._dirty = self._dirty, set()
        for room in dirty:
            keys = self._keys_of(room)
            pairs = [item for pair in self._own.get(room, {}).items() for item in pair]
            arguments = (keys.channel, self._node, self._ttl_ms, *pairs)
            writes.append(("sync", room, command(b"EVALSHA", SYNC, 3, *keys.keys, *arguments)))
        while self._queue and len(writes) < BATCH:
            room, joins, leaves = self._queue.popleft()
            if room in dirty:
                continue  # its sync has it
            keys = self._keys_of(room)
            pairs = [item for pair in joins for item in pair]
            arguments = (keys.channel, self._node, self._ttl_ms, len(joins), *pairs, *leaves)
            writes.append(("change", room, command(b"EVALSHA", CHANGE, 3, *keys.keys, *arguments)))
        to_load, self._to_load = self._to_load, set()
        for room in to_load:
            watched = self._watched.get(room)
            if watched is not None:
                watched.loading = True
                keys = self._keys_of(room)
                writes.append(("load", room, command(b"EVALSHA", LOAD, 3, *keys.keys)))
        return writes

    def tick_writes(self) -> list[tuple[str, str, _Command]]:
        """Refresh this node where it has presences; remove the expired nodes' presences."""
        writes: list[tuple[str, str, _Command]] = []
        for room in self._own.keys() | self._watched.keys():
            keys = self._keys_of(room)
            refresh = b"1" if room in self._own else b"0"
            arguments = (keys.channel, self._node, self._ttl_ms, refresh)
            writes.append(("tick", room, command(b"EVALSHA", TICK, 3, *keys.keys, *arguments)))
        return writes

    def replied(self, kind: str, room: str, reply: ResponseType) -> None:
        """Take one reply of `take_writes` or `tick_writes`."""
        if kind == "load":
            self.loaded(room, reply)
            return
        if kind == "sync":
            self._listed.add(room)
            return
        if not isinstance(reply, list) or len(reply) != 2:
            raise ValueError(f"expected [added, seq] from Redis, got {reply!r}")
        added, seq = reply
        if added == 1 and room in self._listed and room in self._own:
            self._dirty.add(room)  # Redis expired this node: write its presences again
        if kind == "change" or (kind == "tick" and room in self._own):
            self._listed.add(room)
        watched = self._watched.get(room)
        stale = watched is not None and watched.seq is not None and watched.seq != seq
        if kind == "tick" and watched is not None and stale and not watched.loading:
            self._load_again(room, watched)  # a diff is late or was lost
        if self._dirty:
            self._work.set()

    def lost(self) -> None:
        """The connection is gone: every room of the node is written whole on the next."""
        self._connected = False
        self._listed.clear()
        self._queue.clear()
        self._dirty.update(self._own)
        for room, watched in self._watched.items():
            if watched.loading:  # its reply is lost with the connection
                watched.loading = False
                self._to_load.add(room)

    async def run(self, connection: BaseConnection, *, task_status: trio.TaskStatus[None]) -> None:
        """Write and read presence on ``connection`` until it is lost (raises then).

        ``started()`` comes once the scripts are loaded.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, connection)
            await round_trips(connection, load_presence_scripts(), timeout=self._timeout)
            self._connected = True
            self._dirty.update(self._own)
            task_status.started()
            await self._serve_forever(connection)

    async def _serve_forever(self, connection: BaseConnection) -> NoReturn:
        period = self._ttl / 3
        next_tick = trio.current_time()
        while True:
            with trio.move_on_at(next_tick):
                while not (self._queue or self._dirty or self._to_load):
                    self._work = trio.Event()
                    await self._work.wait()
            writes = self.take_writes()
            if trio.current_time() >= next_tick:
                next_tick = trio.current_time() + period
                writes += self.tick_writes()
            if writes:
                await self._round_trip(connection, writes)

    async def _round_trip(
        self, connection: BaseConnection, writes: list[tuple[str, str, _Command]]
    ) -> None:
        batch = connection.create_request_batch([c for _, _, c in writes], timeout=self._timeout)
        with trio.fail_after(2 * self._timeout):  # coredis's own timeout comes first
            results = await batch
        for (kind, room, _), result in zip(writes, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            self.replied(kind, room, result)


class _MalformedError(ValueError):
    """What Redis holds or sends is not what this module writes."""


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise _MalformedError(f"expected bytes, got {type(value).__name__}")
    return value


def _pairs(items: object) -> list[tuple[object, object]]:
    # cmsgpack packs an empty Lua table as a map.
    if items == {}:
        return []
    if not isinstance(items, list):
        raise _MalformedError(f"expected a list, got {type(items).__name__}")
    pairs: list[tuple[object, object]] = []
    for item in cast("list[object]", items):
        if not (isinstance(item, list) and len(cast("list[object]", item)) == 2):
            raise ValueError("expected [ref, presence] pairs")
        ref, packed = cast("list[object]", item)
        pairs.append((ref, packed))
    return pairs
