"""`RelayLink`: this node's relay stream in Redis, what it adds to the others', who is alive.

Every node reads its own stream ``{prefix}relay:{node}`` (XREAD on a connection of its
own, from the entry it added itself when it first connected, so nothing older is read;
after a reconnect, from the last entry it read, so that an OPEN added while it was
connecting again, to the Redis it had lost, is read) and
adds to another node's stream with pipelined XADDs on a second connection, capped with
``MAXLEN ~ max_stream``. One reader per stream and one writer per node keep each relay's
entries in order; `RelayEnd` numbers them, so an entry trimmed away unread breaks its
relay instead of going missing. The frames for the relays of one peer are grouped
(`FrameGroup`) until the writer next runs, or until another entry goes to that peer:
a broadcast to many sessions relayed from one node is one entry, and the reader hands
each of them the same `Frame` objects. No consumer group: a stream has one reader, and a node
that restarts has no relay left to resume.

Liveness: a node that shares a relay with another sends it a BEAT every third of
``dead_after``; a relay whose peer has been silent for ``dead_after`` is broken (its
endpoint's `Endpoint.broken`), on both sides, within that bound. Losing Redis breaks
every relay of the node at once; the link connects again with backoff.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, NoReturn, Protocol, cast, final

import trio
from coredis.connection import BaseConnection

from .._core.outbound import Frame
from .._errors import BackplaneError
from ._connection import BATCH, FAULTS, first_leaf, open_connection, round_trips
from ._relay_end import RelayEnd
from ._relay_entries import (
    BEAT,
    END,
    FRAMES,
    GONE,
    MOVED,
    OPEN,
    REQUEST,
    RESPONSE,
    Entry,
    decode,
    encode,
)
from ._relay_frames import FrameGroup, KeyNumbers, grouped
from ._scripts import command

__all__ = ["Endpoint", "RelayLink"]

_logger = logging.getLogger("trio_rooms")

#: The stream field every entry is stored in.
_FIELD: Final = b"e"
#: Entries that answer nothing: an unknown relay's are dropped, not answered with GONE.
_UNANSWERED: Final = frozenset({GONE, END, MOVED, BEAT, RESPONSE})
#: The first entry of a relay another node initiates: a session, or a route request.
_OPENING: Final = frozenset({OPEN, REQUEST})


class Endpoint(Protocol):
    """One side of one relay: what the link hands its entries to."""

    def deliver(self, entry: Entry) -> None:
        """An entry of this relay, in order; must not block."""
        ...

    def frames(self, frames: list[Frame]) -> None:
        """Frames of this relay, in order (shared with other relays: not to be changed)."""
        ...

    def broken(self, why: str) -> None:
        """The relay is gone (its peer went silent, entries were lost, Redis was lost)."""
        ...


@final
class RelayLink:
    """This node's end of the relay streams in the Redis at ``url``.

    Args:
        url: Redis's address.
        node_id: This node's id: its stream is ``{prefix}relay:{node_id}``.
        prefix: Starts every key.
        timeout: Bound on each round trip to Redis.
        dead_after: Seconds of silence after which a peer's relays are broken.
        max_stream: The entries a stream keeps (``MAXLEN ~``).
        max_queue: Entries waiting to be added; `send` waits beyond it.
    """

    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        prefix: str,
        timeout: float,
        dead_after: float,
        max_stream: int,
        max_queue: int,
    ) -> None:
        self.node_id = node_id
        self._url = url
        self._prefix = prefix
        self._timeout = timeout
        self._dead_after = dead_after
        self._max_stream = max_stream
        self._max_queue = max_queue
        self._ends: dict[tuple[str, str], tuple[RelayEnd, Endpoint]] = {}
        #: When each peer was last heard from, and when the silent ones were found so.
        self._heard: dict[str, float] = {}
        self._silent: dict[str, float] = {}
        self._outbox: deque[tuple[bytes, bytes]] = deque()
        #: Frames waiting to be sealed into one entry per peer, and how many in all.
        self._groups: dict[str, FrameGroup] = {}
        self._grouped = 0
        self._keys = KeyNumbers()
        self._queued = trio.Event()
        self._space = trio.lowlevel.ParkingLot()
        self._connected = False
        self._reconnected = trio.lowlevel.ParkingLot()
        #: The id of the last entry read from this node's stream.
        self._read_after: bytes | None = None
        # Relay ids are this node's id, an incarnation and a count: unique across restarts.
        self._ids = (f"{secrets.token_hex(4)}.{n}" for n in itertools.count(1))
        #: Called with an OPEN or REQUEST of a relay this node does not know: a session
        #: to run here, or a route request to answer.
        self.on_open: Callable[[Entry], None] | None = None

    # ------------------------------------------------------------------ relays

    @property
    def relays(self) -> int:
        """The relays this node is an end of."""
        return len(self._ends)

    def new_end(self, peer: str) -> RelayEnd:
        """A new relay to ``peer``, initiated here."""
        return RelayEnd(peer, next(self._ids))

    def add(self, end: RelayEnd, endpoint: Endpoint) -> None:
        """Deliver ``end``'s entries to ``endpoint`` from now on."""
        self._ends[end.peer, end.relay] = (end, endpoint)

    def remove(self, end: RelayEnd) -> None:
        """Stop delivering ``end``'s entries; what still comes is answered with GONE."""
        self._ends.pop((end.peer, end.relay), None)

    @property
    def connected(self) -> bool:
        """Whether the link is connected to Redis: what is sent now can arrive."""
        return self._connected

    async def wait_connected(self) -> None:
        """Return once the link is connected to Redis (at once if it is)."""
        await trio.lowlevel.checkpoint()
        while not self._connected:
            await self._reconnected.park()

    def alive(self, peer: str) -> bool:
        """False once a relay with ``peer`` broke for its silence, for ``dead_after`` or
        until it is heard again."""
        # Past `dead_after` from then, a peer that still owns a room has renewed its
        # lease since (a dead one's would have lapsed): it is alive, though it never
        # wrote to us again (it may have been us that was paused).
        found = self._silent.get(peer)
        return found is None or trio.current_time() - found > self._dead_after

    # ------------------------------------------------------------------ sending

    def send_nowait(self, end: RelayEnd, kind: str, *body: object) -> None:
        """Queue an entry of ``end``'s, over the bound: for what ends or steers a relay.

        Dropped if Redis is not connected: the relay is broken then anyway.
        """
        if self._connected:
            self._seal(end.peer)
            end.sent += 1
            self._queue(end.peer, encode(kind, self.node_id, end.relay, end.sent, *body))

    def put_frames(self, end: RelayEnd, frames: Sequence[Frame]) -> bool:
        """Group ``frames`` of ``end``'s relay for its peer, if there is room: see `send`.

        Returns False, having taken nothing, if `max_queue` entries and frames wait
        already or Redis is not connected.
        """
        if not self._connected or self._waiting() >= self._max_queue:
            return False
        self._group(end, frames)
        return True

    async def send_frames(self, end: RelayEnd, frames: Sequence[Frame]) -> None:
        """Group ``frames`` of ``end``'s relay for its peer, waiting as `send` does.

        Raises:
            BackplaneError: Redis is not connected.
        """
        await self._wait_for_space()
        self._group(end, frames)

    def _group(self, end: RelayEnd, frames: Sequence[Frame]) -> None:
        group = self._groups.get(end.peer)
        if group is None:
            group = self._groups[end.peer] = FrameGroup()
        before = len(group)
        group.add(end, frames)
        self._grouped += len(group) - before
        self._queued.set()

    def _seal(self, peer: str) -> None:
        """Queue the entry of the frames grouped for ``peer``: before anything else to it."""
        group = self._groups.pop(peer, None)
        if group is not None:
            self._grouped -= len(group)
            self._outbox.append((self._key(peer), group.seal(self.node_id, self._keys)))

    def _waiting(self) -> int:
        return len(self._outbox) + self._grouped

    async def send(self, end: RelayEnd, kind: str, *body: object) -> None:
        """Queue an entry of ``end``'s, waiting while `max_queue` entries wait already.

        Raises:
            BackplaneError: Redis is not connected.
        """
        await self._wait_for_space()
        self._seal(end.peer)
        end.sent += 1
        self._queue(end.peer, encode(kind, self.node_id, end.relay, end.sent, *body))

    async def _wait_for_space(self) -> None:
        """Wait while `max_queue` entries and frames wait to be written.

        Raises:
            BackplaneError: Redis is not connected.
        """
        while self._connected and self._waiting() >= self._max_queue:
            await self._space.park()
        if not self._connected:
            await trio.lowlevel.checkpoint()
            raise BackplaneError("the relays have no connection to Redis")

    def _queue(self, peer: str, data: bytes) -> None:
        self._outbox.append((self._key(peer), data))
        self._queued.set()

    def _key(self, node: str) -> bytes:
        return f"{self._prefix}relay:{node}".encode()

    # ------------------------------------------------------------------ running

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Read this node's stream, add to the others', beat and watch; reconnect on faults.

        Ready once first connected.
        """
        ready = False
        delay = self._timeout
        while True:
            try:
                async with (
                    open_connection(self._url, timeout=self._timeout) as reader,
                    open_connection(self._url, timeout=self._timeout) as writer,
                ):
                    added = await self._add(writer, self._key(self.node_id), b"")
                    if self._read_after is None:
                        self._read_after = added
                    self._connected = True
                    self._reconnected.unpark_all()
                    if not ready:
                        ready = True
                        task_status.started()
                    delay = self._timeout
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._read, reader, self._read_after)
                        nursery.start_soon(self._write, writer)
                        nursery.start_soon(self._beat)
            except* FAULTS as group:
                _logger.warning("relays: Redis failed, connecting again: %r", first_leaf(group))
            finally:
                self._lost("the relays' connection to Redis was lost")
            await trio.sleep(delay)  # sync-ok: backoff before reconnecting
            delay = min(delay * 2, self._dead_after)

    def _lost(self, why: str) -> None:
        self._connected = False
        self._outbox.clear()
        self._groups.clear()
        self._grouped = 0
        self._space.unpark_all()
        ends, self._ends = list(self._ends.values()), {}
        for _, endpoint in ends:
            endpoint.broken(why)

    async def _add(self, connection: BaseConnection, key: bytes, data: bytes) -> bytes:
        with trio.fail_after(2 * self._timeout):
            added = await connection.create_request(*self._xadd(key, data))
        assert isinstance(added, bytes)
        return added

    def _xadd(self, key: bytes, data: bytes) -> tuple[bytes, ...]:
        cap = b"%d" % self._max_stream
        return (b"XADD", key, b"MAXLEN", b"~", cap, b"*", _FIELD, data)

    async def _write(self, connection: BaseConnection) -> NoReturn:
        outbox = self._outbox
        while True:
            while not outbox and not self._groups:
                await self._queued.wait()
                self._queued = trio.Event()
            if self._groups:
                # The session writers woken with this one hand their batches first:
                # a burst to many relays of a peer is then one entry, not one per writer.
                await trio.lowlevel.checkpoint()
            for peer in list(self._groups):
                self._seal(peer)
            batch = [outbox.popleft() for _ in range(min(len(outbox), BATCH))]
            self._space.unpark(count=max(0, self._max_queue - self._waiting()))
            commands = [command(*self._xadd(key, data)) for key, data in batch]
            await round_trips(connection, commands, timeout=self._timeout)

    async def _read(self, connection: BaseConnection, after: bytes) -> NoReturn:
        key = self._key(self.node_id)
        # Blocks for half the timeout at most: an answer always comes within it.
        block = b"%d" % max(1, int(self._timeout * 500))
        while True:
            with trio.fail_after(2 * self._timeout):
                reply = await connection.create_request(
                    b"XREAD", b"COUNT", b"%d" % BATCH, b"BLOCK", block, b"STREAMS", key, after
                )
            if not isinstance(reply, dict):
                continue  # None: nothing came
            for entries in reply.values():
                for entry_id, data in _entries(entries):
                    after = self._read_after = entry_id
                    if data:
                        self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        try:
            entry = decode(data)
        except ValueError as exc:
            _logger.warning("relays: dropped an entry that is not one: %s", exc)
            return
        self._heard[entry.source] = trio.current_time()
        self._silent.pop(entry.source, None)
        if entry.kind == BEAT:
            return
        if entry.kind == FRAMES:
            self._dispatch_frames(entry)
            return
        found = self._ends.get((entry.source, entry.relay))
        if found is None:
            if entry.kind in _OPENING and entry.seq == 1 and self.on_open is not None:
                self.on_open(entry)
            elif entry.kind not in _UNANSWERED:
                self.send_nowait(RelayEnd(entry.source, entry.relay), GONE)
            return
        end, endpoint = found
        if entry.seq != end.received + 1:
            self.remove(end)
            self.send_nowait(end, GONE)
            endpoint.broken(f"relay entries were lost: {entry.seq} after {end.received}")
            return
        end.received = entry.seq
        endpoint.deliver(entry)

    def _dispatch_frames(self, entry: Entry) -> None:
        """Hand each relay of a FRAMES entry its frames (the same objects for all)."""
        try:
            group = grouped(entry.source, entry.body)
        except ValueError as exc:
            _logger.warning("relays: dropped a FRAMES entry of node %r: %s", entry.source, exc)
            return
        for (relay, seq), frames in zip(group.relays, group.frames, strict=True):
            found = self._ends.get((entry.source, relay))
            if found is None:
                self.send_nowait(RelayEnd(entry.source, relay), GONE)
                continue
            end, endpoint = found
            if seq != end.received + 1:
                self.remove(end)
                self.send_nowait(end, GONE)
                endpoint.broken(f"relay entries were lost: {seq} after {end.received}")
                continue
            end.received = seq
            endpoint.frames(frames)

    async def _beat(self) -> NoReturn:
        """Tell every peer we share a relay with that we live; break the silent ones'."""
        while True:
            await trio.sleep(self._dead_after / 3)  # sync-ok: the beat's period itself
            peers = {end.peer for end, _ in self._ends.values()}
            for peer in peers:
                self._queue(peer, encode(BEAT, self.node_id, "", 0))
            now = trio.current_time()
            for end, endpoint in list(self._ends.values()):
                heard = max(self._heard.get(end.peer, -math.inf), end.since)
                if now - heard > self._dead_after:
                    self._silent[end.peer] = now
                    self.remove(end)
                    endpoint.broken(f"node {end.peer!r} was not heard from in time")


def _entries(reply: object) -> list[tuple[bytes, bytes]]:
    """One stream's entries in an XREAD reply: (id, the entry's bytes) in order."""
    assert isinstance(reply, list)
    entries: list[tuple[bytes, bytes]] = []
    for item in cast("list[object]", reply):
        assert isinstance(item, list)
        entry_id, fields = cast("list[object]", item)
        assert isinstance(entry_id, bytes)
        assert isinstance(fields, list)
        values = cast("list[object]", fields)
        data = values[1] if len(values) == 2 else b""
        entries.append((entry_id, data if isinstance(data, bytes) else b""))
    return entries
