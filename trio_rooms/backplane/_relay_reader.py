"""`RelayReader`: this node's relay stream read, and its entries handed to their relays.

Every node reads its own stream ``{prefix}relay:{node}`` on a connection of its own, as
the one consumer of a consumer group (XREADGROUP NOACK: no pending list), from the
entry it added itself when it first connected, so nothing older is read; after a
reconnect, from the last entry it read (XGROUP SETID), so that an OPEN added while it
was connecting again, to the Redis it had lost, is read. A group's read names no entry
id, so several wait in Redis at once and are asked for in one write per half of them:
a write to Redis costs more than anything else the relay does per entry. The reader has
its next reads waiting before it hands out what the last one brought.

Each entry goes to its relay's `Endpoint`, in its order: one missing breaks the relay.
A FRAMES entry hands each of its relays its frames, the same `Frame` objects for all.
An OPEN or REQUEST of a relay this node does not know goes to `RelayLink.on_open`; any
other entry of one is answered with GONE, unless it answers nothing itself. A BEAT
names its node's process: one heard from a new process breaks the old one's relays.

`RelayReader` is `RelayLink`'s base: it declares the link's state it uses, and the
link's methods it calls are stubs here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, NoReturn, Protocol

import trio

from .._core.outbound import Frame
from .._resp import Reply, RespConnection, RespError, resp_command
from ._connection import BATCH
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
    EntryError,
    EntryReader,
)
from ._relay_frames import grouped

__all__ = ["Endpoint", "RelayReader"]

_logger = logging.getLogger("trio_rooms")

#: Entries that answer nothing: an unknown relay's are dropped, not answered with GONE.
_UNANSWERED: Final = frozenset({GONE, END, MOVED, BEAT, RESPONSE})
#: The first entry of a relay another node initiates: a session, or a route request.
_OPENING: Final = frozenset({OPEN, REQUEST})
#: Stream entries one read (XREADGROUP) may bring.
_READ_COUNT: Final = b"%d" % (2 * BATCH)
#: The consumer group (and its one consumer) a node reads its own stream as: a read of
#: a group names no entry id, so reads can be asked for before the last one's reply.
_GROUP: Final = b"trio_rooms"
#: Reads of its stream a node keeps waiting in Redis, at least half of them at any time.
_READS_AHEAD: Final = 32


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


class RelayReader:
    """Reads this node's relay stream and hands out its entries (a `RelayLink`'s base)."""

    # The link's: its node, its relays, its peers' liveness and processes.
    node_id: str
    _timeout: float
    _ends: dict[tuple[str, str], tuple[RelayEnd, Endpoint]]
    _heard: dict[str, float]
    _silent: dict[str, float]
    _incarnations: dict[str, str]
    _opened_with: dict[tuple[str, str], str | None]
    on_open: Callable[[Entry], None] | None

    def __init__(self) -> None:
        #: The id of the last entry read from this node's stream.
        self._read_after: bytes | None = None
        self._reader = EntryReader()

    def remove(self, end: RelayEnd) -> None:
        """Stop delivering ``end``'s entries (`RelayLink.remove`)."""
        raise NotImplementedError

    def send_nowait(self, end: RelayEnd, kind: str, *body: object) -> None:
        """Queue an entry of ``end``'s, over the bound (`RelayLink.send_nowait`)."""
        raise NotImplementedError

    def _key(self, node: str) -> bytes:
        raise NotImplementedError

    # ------------------------------------------------------------------ reading

    async def _read(self, connection: RespConnection, after: bytes) -> NoReturn:
        key = self._key(self.node_id)
        await self._join(connection, key, after)
        # Blocks for half the timeout at most: an answer always comes within it.
        block = b"%d" % max(1, int(self._timeout * 500))
        read = resp_command(
            *(b"XREADGROUP", b"GROUP", _GROUP, _GROUP, b"COUNT", _READ_COUNT, b"BLOCK", block),
            *(b"NOACK", b"STREAMS", key, b">"),
        )
        # Reads wait in Redis ahead of need, served one after another as entries come:
        # one write asks for half of them (a write costs the most here, mostly kernel).
        await connection.send(read * _READS_AHEAD)
        waiting = _READS_AHEAD
        bound = 2 * self._timeout
        # One scope whose deadline moves, not a `fail_after` per reply (hot: per read).
        with trio.CancelScope() as answered:
            while True:
                _extend(answered, bound)
                reply = await connection.reply(wait_first=True)
                waiting -= 1
                entries = _entries(reply)
                if entries:
                    self._read_after = entries[-1][0]
                if waiting <= _READS_AHEAD // 2:
                    # Before these are handed out: Redis waits for the next entries meanwhile.
                    await connection.send(read * (_READS_AHEAD - waiting))
                    waiting = _READS_AHEAD
                for _, data in entries:
                    if data:
                        self._dispatch_all(data)
        raise trio.TooSlowError("Redis did not answer a read of the relay stream in time")

    async def _join(self, connection: RespConnection, key: bytes, after: bytes) -> None:
        """Make this node's group on its stream deliver what follows ``after`` next.

        The group may be there already: this node's, from before a reconnect, or from
        an earlier process of the same node id (whose place ``after`` is not).
        """
        create = resp_command(b"XGROUP", b"CREATE", key, _GROUP, after, b"MKSTREAM")
        place = resp_command(b"XGROUP", b"SETID", key, _GROUP, after)
        with trio.fail_after(2 * self._timeout):
            await connection.send(create + place)
            created = await connection.reply()
            placed = await connection.reply()
        if isinstance(created, RespError) and not str(created).startswith("BUSYGROUP"):
            raise created
        if isinstance(placed, RespError):
            raise placed

    def _dispatch_all(self, data: bytes) -> None:
        heard = ""
        ends = self._ends
        for entry in self._reader.read(data):
            if isinstance(entry, EntryError):
                _logger.warning("relays: dropped an entry that is not one: %s", entry)
                continue
            if entry.source != heard:  # (a stream entry's are one node's: once each)
                heard = entry.source
                self._heard[heard] = trio.current_time()
                if self._silent:
                    self._silent.pop(heard, None)
            # The common case inline, a call less per entry (each relayed message is one):
            # the next entry of a known relay (never a BEAT or FRAMES: their relay is "").
            found = ends.get((entry.source, entry.relay))
            if found is not None and entry.seq == found[0].received + 1 and entry.kind != GONE:
                found[0].received = entry.seq
                found[1].deliver(entry)
            else:
                self._dispatch(entry)

    def _dispatch(self, entry: Entry) -> None:
        if entry.kind == BEAT:
            if entry.body and isinstance(entry.body[0], str):
                self._restarted(entry.source, entry.body[0])
            return
        if entry.kind == FRAMES:
            self._dispatch_frames(entry)
            return
        found = self._ends.get((entry.source, entry.relay))
        if found is None:
            if entry.kind in _OPENING and entry.seq == 1 and self.on_open is not None:
                self.on_open(entry)
            elif entry.kind not in _UNANSWERED:
                self._unknown(entry.source, entry.relay, entry.seq)
            return
        end, endpoint = found
        if entry.kind == GONE:
            # Never a loss, whatever its seq: the peer does not know the relay (a new
            # process under its id, or the relay ended there), and its answer counts
            # from 1 on an end of its own.
            endpoint.deliver(entry)
            return
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
                self._unknown(entry.source, relay, seq)
                continue
            end, endpoint = found
            if seq != end.received + 1:
                self.remove(end)
                self.send_nowait(end, GONE)
                endpoint.broken(f"relay entries were lost: {seq} after {end.received}")
                continue
            end.received = seq
            endpoint.frames(frames)

    def _unknown(self, peer: str, relay: str, seq: int) -> None:
        """Answer an entry of a relay this process does not know: GONE, with its seq, so
        that its peer knows what from there on no session here took (`gone`)."""
        self.send_nowait(RelayEnd(peer, relay), GONE, seq)

    def _restarted(self, peer: str, incarnation: str) -> None:
        """``peer``'s BEAT says its process is ``incarnation``: break the relays that
        another process of its node id shared with this one.

        A node killed and started again under its id is heard from again, by its beats
        or its new relays' entries, before its old relays are found silent: they would
        never break, and their sessions (idle ones) live on here for ever.
        """
        if self._incarnations.get(peer) == incarnation:
            return
        self._incarnations[peer] = incarnation
        for key, (end, endpoint) in list(self._ends.items()):
            opened_with = self._opened_with.get(key)
            if end.peer == peer and opened_with is not None and opened_with != incarnation:
                self.remove(end)
                endpoint.broken(f"node {peer!r} was started again")


def _extend(scope: trio.CancelScope, bound: float) -> None:
    """Put ``scope``'s deadline ``bound`` from now, unless it is 3/4 to all of that away
    already (not none: a scope made without one).

    A reply is thus waited for at least 3/4 of ``bound``, at most ``bound``: setting a
    deadline costs trio a context manager, and the link's loops would move it at every
    reply.
    """
    now = trio.current_time()
    if not now + 0.75 * bound <= scope.deadline <= now + bound:
        scope.deadline = now + bound


def _entries(reply: Reply) -> list[tuple[bytes, bytes]]:
    """The entries of a read's reply (XREADGROUP, one stream, RESP2): (id, the entry's bytes).

    Raises:
        RespError: an error reply, or not a read's.
    """
    if reply is None:
        return []  # nothing came within BLOCK
    if isinstance(reply, RespError):
        raise reply
    if not isinstance(reply, list) or len(reply) != 1:
        raise RespError(f"not an XREADGROUP reply: {reply!r:.80}")
    stream = reply[0]
    if not isinstance(stream, list) or len(stream) != 2 or not isinstance(stream[1], list):
        raise RespError(f"not an XREADGROUP reply: {reply!r:.80}")
    entries: list[tuple[bytes, bytes]] = []
    for item in stream[1]:
        if not isinstance(item, list) or len(item) != 2:
            raise RespError(f"not a stream entry: {item!r:.80}")
        entry_id, fields = item
        if not isinstance(entry_id, bytes) or not isinstance(fields, list):
            raise RespError(f"not a stream entry: {item!r:.80}")
        data = fields[1] if len(fields) == 2 else b""
        entries.append((entry_id, data if isinstance(data, bytes) else b""))
    return entries
