"""``PresenceBoard``: one room's presences, their limits, and the diffs its sessions are sent.

The board keeps two things apart:

- the *view* (``entries``, ``by_key``): what the room's subscribed sessions have been
  told, changed only by `apply`, one diff at a time;
- the node's *own* presences (one per local session that joined): what it asked for.

Without a backplane a change is applied as it is made. With one (`PresenceSync`) it is
sent to the broker, and the view changes when the broker's ordered diff comes back:
the same diffs, in the same order, on every node.

The view changes at once, but subscribers are sent the room's changes of one scheduler
turn as one diff, at the start of the next (Phoenix's tracker batches its broadcasts
the same way, per period): a churn of many changes costs one frame per turn and
subscriber, not one per change. A merged diff is the composition of the diffs in
their order, so every state a subscriber reaches is one the unmerged diffs reach too,
on every node; a presence that joined and left within the turn is never sent at all.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar, final

import attrs
import msgpack
import orjson
import trio

from .._errors import DecodeError, PresenceLimitError
from .._wire import PresenceDiffFrame, PresenceStateFrame, PresenceWireMeta
from ..codec import WireFormat
from ..codec._values import ValueCodec
from .config import RoomsConfig
from .outbound import Frame, OutboundQueue, QueueOverflow
from .presence_sync import PresenceRecord, PresenceSync
from .session_codecs import library_frame
from .stats import Counters

__all__ = ["PresenceBoard", "PresenceEntry", "check_meta_class"]

_logger = logging.getLogger("trio_rooms")

MetaT = TypeVar("MetaT")
MetaT_co = TypeVar("MetaT_co", covariant=True)


class Subscriber(Protocol):
    """What the board needs of a session's runner (`runner.SessionRunner`), so that the
    runner's module and this one do not import each other."""

    id: str
    format: WireFormat
    outbound: OutboundQueue
    counters: Counters

    def enqueue(self, frame: Frame) -> None: ...

    def overflow(self) -> None: ...


@final
@attrs.frozen
class PresenceEntry(Generic[MetaT_co]):
    """One session's presence in a room: under ``key``, with ``meta``."""

    #: What presences are grouped by (a user id): several sessions may share it.
    key: str
    #: Names this presence among the room's, on every node; an update makes a new one.
    ref: str
    #: The session that joined (on whichever node it is connected).
    session_id: str
    meta: MetaT_co


def check_meta_class(meta: type) -> None:
    """Raise `TypeError` now if ``meta`` holds a type the wire cannot carry."""
    ValueCodec(meta, "json", camel_case=True, forbid_extra_keys=True)


def _new_ref() -> str:
    # 64 random bits: unique among a room's presences on every node, without a counter
    # every node would have to share.
    return secrets.token_urlsafe(8)


@final
class PresenceBoard(Generic[MetaT]):
    """The presences of one room, made by its `Presence` declaration and bound by its runner."""

    def __init__(self, meta_class: type[MetaT]) -> None:
        self.meta_class = meta_class
        #: The view: every presence by ref, and by key in the order they joined.
        self.entries: dict[str, PresenceEntry[MetaT]] = {}
        self.by_key: dict[str, dict[str, PresenceEntry[MetaT]]] = {}
        self._ref_of_session: dict[str, str] = {}
        #: This node's sessions' presences, as they asked (the view follows).
        self._own: dict[str, PresenceEntry[MetaT]] = {}
        #: Sessions sent the state and every diff since, by id.
        self.subscribers: dict[str, Subscriber] = {}
        self._room = ""
        self._config = RoomsConfig()
        self._sync: PresenceSync | None = None
        #: Where the room's writes stand (``RoomState.pending``): a diff leaves after them.
        self._pending: Callable[[], int] = lambda: 0
        self._watching = False
        self._codecs: dict[WireFormat, ValueCodec[MetaT]] = {}
        # Each presence's metadata as each wire format's object, made once.
        self._wire: dict[tuple[str, WireFormat], object] = {}
        self._states: dict[WireFormat, Frame] = {}
        self._packer = msgpack.Packer(use_bin_type=True)
        #: The changes of this turn not sent yet, by ref: a diff's joins and leaves.
        self._joins: dict[str, PresenceEntry[MetaT]] = {}
        self._leaves: dict[str, PresenceEntry[MetaT]] = {}
        self._flush_scheduled = False
        #: Diffs sent (each once to every subscriber).
        self.diffs = 0

    def bind(
        self,
        room: str,
        config: RoomsConfig,
        sync: PresenceSync | None,
        pending: Callable[[], int] = lambda: 0,
    ) -> None:
        """Give the board its room's name, limits and wire options, its sync, and where
        the room's writes stand (``RoomState.pending``: a diff leaves after them)."""
        self._room = room
        self._pending = pending
        self._config = config
        self._sync = sync
        options = {"camel_case": config.camel_case, "forbid_extra_keys": config.forbid_extra_keys}
        self._codecs = {
            "json": ValueCodec(self.meta_class, "json", **options),
            "msgpack": ValueCodec(self.meta_class, "msgpack", **options),
        }

    # ------------------------------------------------------------- the view

    def entry_of(self, session_id: str) -> PresenceEntry[MetaT] | None:
        ref = self._ref_of_session.get(session_id)
        return self.entries[ref] if ref is not None else None

    def apply(
        self, joins: Sequence[PresenceEntry[MetaT]], leaves: Sequence[PresenceEntry[MetaT]]
    ) -> None:
        """Change the view by one diff (leaves first); subscribers get it with this turn's.

        A leave of a ref the view lacks, or a join of one it has, is left out.
        """
        left: list[PresenceEntry[MetaT]] = []
        for entry in leaves:
            held = self.entries.pop(entry.ref, None)
            if held is None:
                continue
            left.append(held)
            metas = self.by_key[held.key]
            del metas[held.ref]
            if not metas:
                del self.by_key[held.key]
            if self._ref_of_session.get(held.session_id) == held.ref:
                del self._ref_of_session[held.session_id]
        joined: list[PresenceEntry[MetaT]] = []
        for entry in joins:
            if entry.ref in self.entries:
                continue
            joined.append(entry)
            self.entries[entry.ref] = entry
            self.by_key.setdefault(entry.key, {})[entry.ref] = entry
            self._ref_of_session[entry.session_id] = entry.ref
        if not (left or joined):
            return
        self._states.clear()
        for entry in left:
            if self._joins.pop(entry.ref, None) is None:
                self._leaves[entry.ref] = entry
            else:  # joined this turn: no subscriber was told
                self._forget(entry)
        for entry in joined:
            self._joins[entry.ref] = entry
        if not self._flush_scheduled and (self._joins or self._leaves):
            self._flush_scheduled = True
            trio.lowlevel.current_trio_token().run_sync_soon(self.flush)

    def flush(self) -> None:
        """Send the changes not sent yet to every subscriber, as one diff."""
        self._flush_scheduled = False
        joined, left = list(self._joins.values()), list(self._leaves.values())
        self._joins.clear()
        self._leaves.clear()
        if not (joined or left):
            return
        self.diffs += 1
        if self.subscribers:
            self._send_diff(joined, left)
        for entry in left:  # after the diff: it names their metadata
            self._forget(entry)

    def _forget(self, entry: PresenceEntry[MetaT]) -> None:
        self._wire.pop((entry.ref, "json"), None)
        self._wire.pop((entry.ref, "msgpack"), None)

    def _send_diff(
        self, joined: list[PresenceEntry[MetaT]], left: list[PresenceEntry[MetaT]]
    ) -> None:
        frames: dict[WireFormat, Frame] = {}
        overflowed: list[Subscriber] = []
        after: int | None = None
        # As a broadcast's fan-out: one frame per wire format, shared, put on each queue
        # (a writer that is idle writes it at once). Not logged: a resume gets the state.
        for runner in self.subscribers.values():
            wire = runner.format
            frame = frames.get(wire)
            if frame is None:
                if after is None:
                    after = self._pending()
                diff = PresenceDiffFrame(self._metas(joined, wire), self._metas(left, wire))
                frame = frames[wire] = library_frame(wire, diff)
                frame.after = after  # the output gate: after the event's writes so far
            try:
                if runner.outbound.put_first(frame):
                    runner.counters.messages_out += 1
            except QueueOverflow:
                overflowed.append(runner)
        for runner in overflowed:  # after the loop: closing unsubscribes it
            runner.overflow()

    def _metas(
        self, entries: Sequence[PresenceEntry[MetaT]], wire: WireFormat
    ) -> dict[str, list[PresenceWireMeta]]:
        metas: dict[str, list[PresenceWireMeta]] = {}
        for entry in entries:
            metas.setdefault(entry.key, []).append(
                PresenceWireMeta(entry.ref, self._on_wire(entry, wire))
            )
        return metas

    def _on_wire(self, entry: PresenceEntry[MetaT], wire: WireFormat) -> object:
        cached = self._wire.get((entry.ref, wire))
        if cached is None:
            cached = self._wire[entry.ref, wire] = self._codecs[wire].to_wire(entry.meta)
        return cached

    def state_frame(self, wire: WireFormat) -> Frame:
        """The ``{"$presence": {"state": ...}}`` frame of the view, made once per change."""
        frame = self._states.get(wire)
        if frame is None:
            entries = list(self.entries.values())
            frame = self._states[wire] = library_frame(
                wire, PresenceStateFrame(self._metas(entries, wire))
            )
        return frame

    # ----------------------------------------------------------- subscribers

    def subscribe(self, runner: Subscriber) -> None:
        """Send ``runner``'s client the state now, then every diff (again: the state again)."""
        self.flush()  # the state holds this turn's changes: the others get them first
        self.subscribers[runner.id] = runner
        runner.enqueue(self.state_frame(runner.format))

    def unsubscribe(self, runner: Subscriber) -> None:
        if self.subscribers.get(runner.id) is runner:
            del self.subscribers[runner.id]

    # --------------------------------------------------------------- changes

    def join(self, runner: Subscriber, key: str, meta: MetaT) -> PresenceEntry[MetaT]:
        """`Session.join_presence`: add the session's presence, or replace it."""
        if not isinstance(key, str) or not key:  # pyright: ignore[reportUnnecessaryIsInstance] - untyped callers
            raise TypeError(f"a presence key is a non-empty str, got {key!r}")
        self._check_meta(key, meta)
        old = self._own.get(runner.id)
        if old is None:
            self._check_room(runner.id)
        entry = PresenceEntry(key, _new_ref(), runner.id, meta)
        self._own[runner.id] = entry
        self._change(entry, old)
        return entry

    def update(self, runner: Subscriber, meta: MetaT) -> PresenceEntry[MetaT]:
        """`Session.update_presence`: the session's presence gets ``meta`` (and a new ref)."""
        old = self._own.get(runner.id)
        if old is None:
            raise RuntimeError(
                f"session {runner.id} has no presence to update: call join_presence() first"
            )
        self._check_meta(old.key, meta)
        entry = PresenceEntry(old.key, _new_ref(), runner.id, meta)
        self._own[runner.id] = entry
        self._change(entry, old)
        return entry

    def leave(self, runner: Subscriber) -> None:
        """`Session.leave_presence`, and a session leaving the room: its presence goes."""
        old = self._own.pop(runner.id, None)
        if old is not None:
            self._change(None, old)

    def session_left(self, runner: Subscriber) -> None:
        """A session left the room: it is unsubscribed and its presence leaves."""
        self.unsubscribe(runner)
        self.leave(runner)

    def _check_meta(self, key: str, meta: MetaT) -> None:
        encoded = orjson.dumps(self._codecs["json"].to_wire(meta))  # TypeError: not a meta_class
        size = len(encoded) + len(key.encode())
        limit = self._config.max_presence_size
        if size > limit:
            raise PresenceLimitError(
                "max_presence_size",
                f"a presence of {size} bytes (its key and metadata as JSON) is over "
                f"RoomsConfig.max_presence_size ({limit})",
            )

    def _check_room(self, session_id: str) -> None:
        limit = self._config.max_presences_per_room
        # The view, and this node's own joins that have not come back through it yet.
        count = len(self.entries) + sum(
            1 for sid, own in self._own.items() if own.ref not in self.entries and sid != session_id
        )
        if count >= limit:
            raise PresenceLimitError(
                "max_presences_per_room",
                f"room {self._room!r} has {count} presences: "
                f"RoomsConfig.max_presences_per_room is {limit}",
            )

    def _change(
        self, join: PresenceEntry[MetaT] | None, leave: PresenceEntry[MetaT] | None
    ) -> None:
        joins = [join] if join is not None else []
        leaves = [leave] if leave is not None else []
        sync = self._sync
        if sync is None:
            self.apply(joins, leaves)
            return
        sync.change(self._room, [self._record(entry) for entry in joins], [e.ref for e in leaves])

    # ------------------------------------------------------------ other nodes

    def start_watching(self) -> None:
        """The room's first local session: follow the room's presence on every node."""
        if self._sync is not None and not self._watching:
            self._watching = True
            self._sync.watch(self._room, self._apply_records)

    def stop_watching(self) -> None:
        """The last local session left: stop following; the view empties."""
        if self._sync is not None and self._watching:
            self._watching = False
            self._sync.unwatch(self._room)
            self.apply([], list(self.entries.values()))

    def _record(self, entry: PresenceEntry[MetaT]) -> PresenceRecord:
        meta = self._packer.pack(self._codecs["msgpack"].to_wire(entry.meta))
        return PresenceRecord(entry.ref, entry.key, entry.session_id, meta)

    def _apply_records(
        self, joins: Sequence[PresenceRecord], leaves: Sequence[PresenceRecord]
    ) -> None:
        joined: list[PresenceEntry[MetaT]] = []
        for record in joins:
            own = self._own.get(record.session_id)
            if own is not None and own.ref == record.ref:
                joined.append(own)  # our own, as we made it
                continue
            try:
                meta = self._codecs["msgpack"].from_wire(msgpack.unpackb(record.meta))
            except (DecodeError, ValueError) as exc:
                # Another node runs another version of the room's metadata class.
                _logger.warning(
                    "dropped the presence %s of room %r from another node: %s",
                    record.ref,
                    self._room,
                    exc,
                )
                continue
            joined.append(PresenceEntry(record.key, record.ref, record.session_id, meta))
        left = [self.entries[r.ref] for r in leaves if r.ref in self.entries]
        self.apply(joined, left)
