"""`RelayLink`: this node's relay stream in Redis, what it adds to the others', who is alive.

Every node reads its own stream ``{prefix}relay:{node}`` on a connection of its own,
with its next reads waiting in Redis ahead of need (`RelayReader`, the link's base). It
adds to another node's stream with XADDs on a second connection, capped with
``MAXLEN ~ max_stream``. Both are raw RESP (`RespConnection`). The writer runs once per
scheduler turn in which something was queued: the entries of that turn to one node are
one stream entry (their bytes one after another), and all its XADDs are one write, whose
replies a third task checks in bulk, every so often (not woken for each: they are a
write of Redis's and a wake-up of ours per XADD), so the next turn's write does not wait
for them. A CREDIT thus travels in the stream entry of the frames queued with it. One
reader per stream and one writer per node keep each relay's entries in order;
`RelayEnd` numbers them, so an entry trimmed away unread breaks its relay instead of
going missing. The frames for the relays of one peer are grouped (`FrameGroup`) until
the writer next runs, or until another entry goes to that peer: a broadcast to many
sessions relayed from one node is one entry, and the reader hands each of them the same
`Frame` objects. The group is not for sharing a stream (it has one reader) nor for
redelivery (a node that restarts has no relay left to resume).

A room's commit may carry the frames it lets go (`RelayedCommits`): `collect` takes them
instead of grouping them, `commit` writes the commit's EVALSHA on the writer's
connection in its place among the entries, and its reply is read as soon as it comes
(`_relay_replies`), while the XADDs' are read in bulk.

Liveness: a node that shares a relay with another sends it a BEAT every third of
``dead_after``; a relay whose peer has been silent for ``dead_after`` is broken (its
endpoint's `Endpoint.broken`), on both sides, within that bound. A BEAT names its
process (the incarnation in its relay ids): a node id heard from a new process breaks
the relays of the old one, which a node killed and started again at once under its id
would otherwise keep alive. Losing Redis breaks every relay of the node at once; the
link connects again with backoff.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, NoReturn, final

import trio

from .._core.outbound import Frame
from .._errors import BackplaneError
from .._resp import (
    RESP_FAULTS,
    Reply,
    RespConnection,
    RespError,
    open_resp,
    resp_prefix,
    resp_tail,
)
from ._connection import BATCH, FAULTS, client_name, first_leaf
from ._relay_end import RelayEnd
from ._relay_entries import BEAT, Entry, encode, message_head, pack
from ._relay_frames import FrameGroup, KeyNumbers
from ._relay_reader import Endpoint, RelayReader
from ._relay_replies import CommitReply, Unconfirmed, confirm

__all__ = ["RelayLink"]

_logger = logging.getLogger("trio_rooms")

#: The stream field every entry is stored in.
_FIELD: Final = b"e"
#: Bytes of entries at most in one stream entry (one XADD).
_ENTRY_BYTES: Final = 512 * 1024
#: Losing the link's connections: connect again.
_FAULTS: Final = (*FAULTS, *RESP_FAULTS)


@final
class RelayLink(RelayReader):
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
        super().__init__()
        self.node_id = node_id
        self._url = url
        self._name = client_name("relays", node_id)
        self._prefix = prefix
        self._timeout = timeout
        self._dead_after = dead_after
        self._max_stream = max_stream
        self._max_queue = max_queue
        self._ends: dict[tuple[str, str], tuple[RelayEnd, Endpoint]] = {}
        #: When each peer was last heard from, and when the silent ones were found so.
        self._heard: dict[str, float] = {}
        self._silent: dict[str, float] = {}
        #: Entries to add: (their stream's key, their data); or a commit of `commit`'s
        #: (an empty key, its command), written in its place among them.
        self._outbox: deque[tuple[bytes, bytes]] = deque()
        #: Frames waiting to be sealed into one entry per peer, and how many in all.
        self._groups: dict[str, FrameGroup] = {}
        self._grouped = 0
        #: While a commit gathers the frames it lets go (`collect`): its groups, by peer.
        self._collecting: dict[str, FrameGroup] | None = None
        #: The replies of the commits in the outbox, in order; then of those written,
        #: with the number of their reply among all the writer's (`Unconfirmed`).
        self._commits: deque[CommitReply] = deque()
        self._answering: deque[tuple[int, CommitReply]] = deque()
        #: Scripts loaded into Redis at each connection (`load_script`).
        self._scripts: list[bytes] = []
        #: The scope of the connections' tasks while connected (`drop` cancels it).
        self._connection_scope: trio.CancelScope | None = None
        self._keys = KeyNumbers()
        #: Each node's stream key, made once.
        self._stream_keys: dict[str, bytes] = {}
        #: Each stream key's XADD but its data, made once (`resp_prefix`).
        self._xadd_prefixes: dict[bytes, bytes] = {}
        self._queued = trio.Event()
        #: The writer waits and nothing has woken it yet: the first entry queued since
        #: wakes it, the others of that turn need not (`Event.set` is a call each).
        self._idle = False
        #: The writer's connection while it waits idle (None: it writes, or is not running).
        self._writer: tuple[RespConnection, Unconfirmed] | None = None
        #: What the socket did not take of a write of `flush_nowait`: the writer's next.
        self._carry = b""
        #: `_take`s so far (`writes`).
        self._writes = 0
        self._space = trio.lowlevel.ParkingLot()
        self._connected = False
        self._reconnected = trio.lowlevel.ParkingLot()
        # Relay ids are this node's id, an incarnation and a count: unique across restarts.
        self._incarnation = secrets.token_hex(4)
        self._ids = (f"{self._incarnation}.{n}" for n in itertools.count(1))
        #: Each peer's incarnation as its last BEAT said, and by relay the incarnation
        #: of its peer it was opened with (None: not known then): see `_restarted`.
        self._incarnations: dict[str, str] = {}
        self._opened_with: dict[tuple[str, str], str | None] = {}
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
        key = end.peer, end.relay
        self._ends[key] = (end, endpoint)
        # A relay the peer opened has its incarnation in its id; one opened here, the
        # peer's last known.
        incarnation = end.relay.partition(".")[0]
        if incarnation == self._incarnation:
            self._opened_with[key] = self._incarnations.get(end.peer)
        else:
            self._opened_with[key] = incarnation

    def remove(self, end: RelayEnd) -> None:
        """Stop delivering ``end``'s entries; what still comes is answered with GONE."""
        key = end.peer, end.relay
        self._ends.pop(key, None)
        self._opened_with.pop(key, None)

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

    def send_lazily(self, end: RelayEnd, kind: str, *body: object) -> None:
        """Queue an entry of ``end``'s like `send_nowait`, but without waking the writer.

        It goes with the next write to Redis, whatever wakes the writer (or `wake`), or
        with `flush_nowait`'s: for an entry that may wait, such as a CREDIT (the owner's
        reply usually follows it a commit later). `writes` tells when it has gone.
        """
        if self._connected:
            self._seal(end.peer)
            end.sent += 1
            self._outbox.append(
                (self._key(end.peer), encode(kind, self.node_id, end.relay, end.sent, *body))
            )

    @property
    def writes(self) -> int:
        """Writes of queued entries taken so far: once it changes, every entry queued
        before is written, or is the writer's to write next without waiting."""
        return self._writes

    def wake(self) -> None:
        """Make the writer write what is queued (entries `send_lazily` left waiting)."""
        if self._outbox:
            self._queued.set()

    def put_frames(self, end: RelayEnd, frames: Sequence[Frame]) -> bool:
        """Group ``frames`` of ``end``'s relay for its peer, if there is room: see `send`.

        Returns False, having taken nothing, if `max_queue` entries and frames wait
        already or Redis is not connected.
        """
        if not self._connected or len(self._outbox) + self._grouped >= self._max_queue:
            return False
        collecting = self._collecting
        if collecting is not None:
            group = collecting.get(end.peer)
            if group is None:
                self._seal(end.peer)  # what was grouped before goes first, on its own
                group = collecting[end.peer] = FrameGroup()
            group.add(end, frames)
            return True
        # `_group`, inline: this is every reply's way out on the owner (a call less).
        group = self._groups.get(end.peer)
        if group is None:
            group = self._groups[end.peer] = FrameGroup()
        self._grouped += group.add(end, frames)
        if self._idle:  # (see `try_send`)
            self._idle = False
            self._queued.set()
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
        self._grouped += group.add(end, frames)
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
        while not self.try_send(end, kind, *body):
            await self._wait_for_space()

    def try_send(self, end: RelayEnd, kind: str, *body: object) -> bool:
        """Queue an entry of ``end``'s as `send` does if it need not wait; return False,
        having queued nothing, if it must (or Redis is not connected).

        For a caller that sends often and seldom waits (the client's messages on its
        node): no coroutine is made and run for each.
        """
        if not self._connected or len(self._outbox) + self._grouped >= self._max_queue:
            return False
        if self._groups:
            self._seal(end.peer)
        end.sent += 1
        # The peer's key looked up inline: this is every relayed message's way out.
        key = self._stream_keys.get(end.peer) or self._key(end.peer)
        self._outbox.append((key, encode(kind, self.node_id, end.relay, end.sent, *body)))
        # Only an idle writer is woken, once (a call less per entry): a busy one looks at
        # the outbox and the groups again before it next waits.
        if self._idle:
            self._idle = False
            self._queued.set()
        return True

    def try_message(self, end: RelayEnd, message: str | bytes) -> bool:
        """`try_send` of a MESSAGE of ``end``'s: the client's every message, on its node.

        The same bytes as `encode`'s, but the entry's head (its kind, this node and the
        relay) is packed once per relay, not once per message.
        """
        if not self._connected or len(self._outbox) + self._grouped >= self._max_queue:
            return False
        if self._groups:
            self._seal(end.peer)
        head = end.head
        if not head:
            head = end.head = message_head(self.node_id, end.relay)
        end.sent += 1
        key = self._stream_keys.get(end.peer) or self._key(end.peer)
        self._outbox.append((key, head + pack(end.sent) + pack(message)))
        if self._idle:
            self._idle = False
            self._queued.set()
        return True

    # ------------------------------------------------------------------ commits

    @property
    def max_stream(self) -> int:
        """The entries each stream keeps (``MAXLEN ~``)."""
        return self._max_stream

    def load_script(self, script: bytes) -> None:
        """Load ``script`` into Redis at each connection, before anything is written:
        a `commit` of it never meets a Redis that forgot it (NOSCRIPT) but by a
        SCRIPT FLUSH."""
        self._scripts.append(script)

    def collect(self) -> None:
        """Take the frames `put_frames` is given from now on for a commit, until `collected`.

        A peer's frames grouped before are sealed first, into an entry of their own:
        each relay's entries stay in order.
        """
        if self._collecting is not None:
            raise RuntimeError("frames are being collected for a commit already")
        self._collecting = {}

    def collected(self) -> list[tuple[bytes, bytes]]:
        """The entries of the frames collected since `collect`: (a stream's key, the
        entry's data), each relay's seq counted. They must go into the next `commit`:
        an entry of their relays queued after it comes after them."""
        groups, self._collecting = self._collecting, None
        if groups is None:
            raise RuntimeError("no frames are being collected")
        return [
            (self._key(peer), group.seal(self.node_id, self._keys))
            for peer, group in groups.items()
        ]

    async def commit(self, command: bytes) -> Reply:
        """Write ``command`` after every entry queued before it, and return its reply.

        For a commit (`RelayedCommits`): the EVALSHA of a script that adds the entries
        `collected` gave, once the commit is written. It is written in its place among
        the entries (one connection: Redis runs them in that order), and its reply is
        read as soon as it comes.

        Raises:
            BackplaneError: the connection to Redis was lost before the reply came (the
                command may have run or not), or there is none.
        """
        if not self._connected:
            await trio.lowlevel.checkpoint()
            raise BackplaneError("the relays have no connection to Redis")
        reply = CommitReply()
        self._outbox.append((b"", command))
        self._commits.append(reply)
        self.flush_nowait()  # (a busy writer finds it in the outbox once its write is done)
        await reply.wait()
        if reply.lost is not None:
            raise BackplaneError(reply.lost)
        return reply.reply

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
        key = self._stream_keys.get(node)
        if key is None:  # (hot: one per entry sent; a node's key never changes)
            key = self._stream_keys[node] = f"{self._prefix}relay:{node}".encode()
        return key

    @property
    def reconnect_wait(self) -> float:
        """The longest wait to be connected again once Redis answers, after a loss.

        `run` sleeps between attempts with a backoff that doubles from ``timeout`` up to
        ``dead_after``, and an attempt takes two connections (each within ``3 *
        timeout``) and an XADD (within ``2 * timeout``): the attempt after the longest
        sleep is through within ``dead_after + 8 * timeout``.
        """
        return self._dead_after + 8 * self._timeout

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
                    open_resp(self._url, timeout=self._timeout, name=self._name) as reader,
                    open_resp(self._url, timeout=self._timeout, name=self._name) as writer,
                ):
                    added = await self._add(writer, self._key(self.node_id), b"")
                    for script in self._scripts:
                        with trio.fail_after(2 * self._timeout):
                            loaded = await writer.call(b"SCRIPT", b"LOAD", script)
                        if isinstance(loaded, RespError):
                            raise loaded
                    if self._read_after is None:
                        self._read_after = added
                    self._connected = True
                    self._reconnected.unpark_all()
                    if not ready:
                        ready = True
                        task_status.started()
                    delay = self._timeout
                    async with trio.open_nursery() as nursery:
                        self._connection_scope = nursery.cancel_scope
                        unconfirmed = Unconfirmed(self._answering)
                        nursery.start_soon(self._read, reader, self._read_after)
                        nursery.start_soon(self._write, writer, unconfirmed)
                        nursery.start_soon(confirm, writer, unconfirmed, self._timeout)
                        nursery.start_soon(self._beat)
            except* _FAULTS as group:
                _logger.warning("relays: Redis failed, connecting again: %r", first_leaf(group))
            finally:
                self._lost("the relays' connection to Redis was lost")
            await trio.sleep(delay)  # sync-ok: backoff before reconnecting
            delay = min(delay * 2, self._dead_after)

    def drop(self, why: str) -> None:
        """Drop the connections now, as if Redis had: the relays break, the link
        connects again (and loads its scripts again)."""
        scope = self._connection_scope
        if scope is not None and self._connected:
            _logger.warning("relays: connecting again: %s", why)
            self._connected = False  # nothing more is queued or written meanwhile
            self._writer = None
            scope.cancel()

    def _lost(self, why: str) -> None:
        self._connection_scope = None
        self._connected = False
        self._outbox.clear()
        self._groups.clear()
        self._grouped = 0
        commits = [*self._commits, *(reply for _, reply in self._answering)]
        self._commits.clear()
        self._answering.clear()
        for reply in commits:
            reply.fail(why)
        self._space.unpark_all()
        ends, self._ends = list(self._ends.values()), {}
        for _, endpoint in ends:
            endpoint.broken(why)

    async def _add(self, connection: RespConnection, key: bytes, data: bytes) -> bytes:
        with trio.fail_after(2 * self._timeout):
            added = await connection.call(*self._xadd(key, data))
        if not isinstance(added, bytes):
            raise RespError(f"XADD answered {added!r:.60}")
        return added

    def _xadd(self, key: bytes, data: bytes) -> tuple[bytes, ...]:
        cap = b"%d" % self._max_stream
        return (b"XADD", key, b"MAXLEN", b"~", cap, b"*", _FIELD, data)

    def _xadd_command(self, key: bytes, data: bytes) -> bytes:
        """`_xadd`'s command as bytes (hot: every write of the writer)."""
        prefix = self._xadd_prefixes.get(key)
        if prefix is None:
            prefix = self._xadd_prefixes[key] = resp_prefix(8, *self._xadd(key, b"")[:-1])
        return resp_tail(prefix, data)

    def flush_nowait(self) -> None:
        """Write what is grouped and queued now, if the writer waits idle: not a turn later.

        For the owner's output gate (`OutboundQueue.forward`): once a commit released
        the relayed sessions' frames, they leave before its local sockets are written.
        What the socket does not take is the writer's to send, first.
        """
        writer = self._writer
        if writer is None or self._carry or not (self._outbox or self._groups):
            return
        connection, unconfirmed = writer
        self._carry = connection.send_nowait(self._take(unconfirmed))
        if self._carry or self._outbox:
            self._queued.set()

    async def _write(self, connection: RespConnection, unconfirmed: Unconfirmed) -> NoReturn:
        outbox = self._outbox
        try:
            while True:
                while not self._carry and not outbox and not self._groups:
                    self._writer = (connection, unconfirmed)  # idle: `flush_nowait` may write
                    self._idle = True
                    await self._queued.wait()
                    self._idle = False
                    self._writer = None
                    self._queued = trio.Event()
                if self._carry:
                    # The rest of a write of `flush_nowait`: before anything after it.
                    data, self._carry = self._carry, b""
                    await connection.send(data)
                    continue
                if self._groups:
                    # The session writers woken with this one hand their batches first:
                    # a burst to many relays of a peer is then one entry, not one per writer.
                    await trio.lowlevel.checkpoint()
                await connection.send(self._take(unconfirmed))
        finally:
            self._idle = False
            self._writer = None
            self._carry = b""

    def _take(self, unconfirmed: Unconfirmed) -> bytes:
        """The XADDs of what is grouped and of up to `BATCH` queued entries, as one write."""
        outbox = self._outbox
        for peer in list(self._groups):
            self._seal(peer)
        if self._commits:
            return self._take_with_commits(unconfirmed)
        by_key: dict[bytes, list[bytes]] = {}
        if len(outbox) <= BATCH:
            # All of it, as mostly: iterated, then cleared (no `popleft` per entry).
            for key, data in outbox:
                by_key.setdefault(key, []).append(data)
            outbox.clear()
        else:
            for _ in range(BATCH):
                key, data = outbox.popleft()
                by_key.setdefault(key, []).append(data)
        self._space.unpark(count=max(0, self._max_queue - self._waiting()))
        self._writes += 1
        writes = [
            self._xadd_command(key, chunk)
            for key, entries in by_key.items()
            for chunk in _joined(entries)
        ]
        unconfirmed.add(len(writes))
        return b"".join(writes)

    def _take_with_commits(self, unconfirmed: Unconfirmed) -> bytes:
        """`_take` of an outbox with commits in it: each written in its place, the XADDs
        queued before it first (they are joined by stream only up to it)."""
        outbox = self._outbox
        writes: list[bytes] = []
        by_key: dict[bytes, list[bytes]] = {}
        for _ in range(min(len(outbox), BATCH)):
            key, data = outbox.popleft()
            if key:
                by_key.setdefault(key, []).append(data)
                continue
            self._xadds(by_key, writes, unconfirmed)
            by_key = {}
            unconfirmed.add_commit(self._commits.popleft())
            writes.append(data)
        self._xadds(by_key, writes, unconfirmed)
        self._space.unpark(count=max(0, self._max_queue - self._waiting()))
        self._writes += 1
        return b"".join(writes)

    def _xadds(
        self, by_key: dict[bytes, list[bytes]], writes: list[bytes], unconfirmed: Unconfirmed
    ) -> None:
        count = len(writes)
        writes += (
            self._xadd_command(key, chunk)
            for key, entries in by_key.items()
            for chunk in _joined(entries)
        )
        unconfirmed.add(len(writes) - count)

    async def _beat(self) -> NoReturn:
        """Tell every peer we share a relay with that we live; break the silent ones'."""
        while True:
            await trio.sleep(self._dead_after / 3)  # sync-ok: the beat's period itself
            peers = {end.peer for end, _ in self._ends.values()}
            for peer in peers:
                self._queue(peer, encode(BEAT, self.node_id, "", 0, self._incarnation))
            now = trio.current_time()
            for end, endpoint in list(self._ends.values()):
                heard = max(self._heard.get(end.peer, -math.inf), end.since)
                if now - heard > self._dead_after:
                    self._silent[end.peer] = now
                    self.remove(end)
                    endpoint.broken(f"node {end.peer!r} was not heard from in time")


def _joined(entries: list[bytes]) -> list[bytes]:
    """``entries`` as few stream entries' data, in order, each at most `_ENTRY_BYTES`
    (unless one entry is larger)."""
    if sum(map(len, entries)) <= _ENTRY_BYTES:
        return [b"".join(entries)]  # as mostly: one, without a turn of Python per entry
    chunks: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for data in entries:
        if chunk and size + len(data) > _ENTRY_BYTES:
            chunks.append(b"".join(chunk))
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    chunks.append(b"".join(chunk))
    return chunks
