"""``RoomLog``: a room's replay log, which gives a resuming client the frames it missed.

No envelope is added to user messages: both sides count them instead. A session knows
how many frames it was sent; its client, how many it received. The log holds every
user frame the room sent (a broadcast once, with whom it excluded; a ``send`` with the
one session it was for), each with the next sequence number of the room. A session's
stored `ReplayCursor` says how many frames it had been sent when the log ended where;
from it and the client's count, the frames the client did not get are found by
walking the log for the entries that were for it.

An entry is appended to the batch of the event that sends it (`RoomState.log_frame`),
so the frame leaves only once its entry is durable: the output gate waits for it. The
log is kept in storage, bounded by count there; the byte and age bounds are applied
when a replay reads it. A log starts its numbering at the wall clock in microseconds,
so a room whose log was lost (another storage, Redis flushed) never numbers a frame as
one of the old log's, and a cursor into a lost log asks for a resync.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, cast, final

import attrs
import msgpack
import trio

from .._message import Message
from .config import ReplayLimits
from .room_state import RoomState
from .storage import LoggedFrame, ReplayCursor

__all__ = ["EntryWire", "LogEntry", "ReplayPlan", "RoomLog", "transcode"]

#: How an entry's payload is encoded: a message in a wire format, or raw bytes.
EntryWire = Literal["json", "msgpack", "bytes"]

#: An entry's ``to`` that no session has: the mark a log's start leaves.
_NOBODY = ""


@final
@attrs.frozen
class LogEntry:
    """One user frame of a room, as its log keeps it."""

    seq: int
    #: The seq of the entry before it (0: none), so a replay tells a lost log from its own.
    prev: int
    #: Wall-clock (UNIX) time it was sent.
    at: float
    wire: EntryWire
    payload: bytes
    #: The session it was sent to; None: a broadcast to every session but ``exclude``.
    to: str | None
    exclude: tuple[str, ...] = ()
    #: A tagged broadcast: the sessions it was sent to, exactly (a session away then
    #: had no tags: tags live with a connection); None: not a tagged one.
    only: tuple[str, ...] | None = None

    @property
    def size(self) -> int:
        """Bytes it holds in memory: its payload, and a tagged broadcast's recipients."""
        if self.only is None:
            return len(self.payload)
        return len(self.payload) + sum(map(len, self.only))

    def is_for(self, session_id: str) -> bool:
        """Whether the session ``session_id`` was sent this frame (or would have been)."""
        if self.to is not None:
            return self.to == session_id
        if self.only is not None:
            return session_id in self.only
        return session_id not in self.exclude

    @classmethod
    def unpack(cls, frame: LoggedFrame) -> LogEntry:
        """The entry stored as ``frame`` (by `RoomLog`: msgpack [prev, at, wire, payload,
        to, exclude] and, for a tagged broadcast, its ``only``).

        Raises:
            ValueError: ``frame`` is not an entry this module wrote.
        """
        try:
            fields = msgpack.unpackb(frame.data)
        except (ValueError, msgpack.UnpackException) as exc:
            raise ValueError(f"replay log entry {frame.seq}: unreadable") from exc
        match fields:
            case [
                int() as prev,
                float() as at,
                "json" | "msgpack" | "bytes" as wire,
                bytes() as payload,
                str() | None as to,
                exclude,
                *rest,
            ] if (excluded := _strings(exclude)) is not None and len(rest) <= 1:
                only = _strings(rest[0]) if rest else None
                if rest and only is None:
                    raise ValueError(f"replay log entry {frame.seq}: unexpected layout")
                return cls(frame.seq, prev, at, wire, payload, to, excluded, only)
            case _:
                raise ValueError(f"replay log entry {frame.seq}: unexpected layout")


def _strings(value: object) -> tuple[str, ...] | None:
    """``value`` as a tuple of str if it is a list of them, else None."""
    if not isinstance(value, list):
        return None
    items = tuple(cast("list[object]", value))
    return cast("tuple[str, ...]", items) if all(isinstance(i, str) for i in items) else None


@final
@attrs.frozen
class ReplayPlan:
    """What a resume replays: the frames, or why it cannot (``resync``)."""

    entries: Sequence[LogEntry] = ()
    #: Why the missed frames cannot be replayed; None: ``entries`` are all of them.
    resync: str | None = None


@final
class RoomLog:
    """The replay log of one live room: its numbering, its appends, its replays.

    Inactive until it is needed: a room logs nothing until a resumable session is
    admitted, or its stored log shows that one was (then it logs from its start).
    """

    __slots__ = (
        "_clock",
        "_entries",
        "_entry_bytes",
        "_grown",
        "_grown_bytes",
        "_grown_entries",
        "_loading",
        "_pack",
        "_state",
        "active",
        "head",
        "limits",
    )

    def __init__(self, state: RoomState, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._clock = clock
        #: The bounds; None: the room keeps no log.
        self.limits: ReplayLimits | None = None
        self.active = False
        #: The seq of the newest entry (0: none yet).
        self.head = 0
        # The log as the room wrote it, once a resume has read it from storage: later
        # resumes (a reconnect wave) read memory, not the whole log each, under the gate.
        # This node is the log's only writer (there is no replay with a backplane).
        self._entries: deque[LogEntry] | None = None
        self._entry_bytes = 0
        #: While the log is first read: what the room appends meanwhile.
        self._loading: list[LogEntry] | None = None
        # One packer per log, not `msgpack.packb`'s new one per frame; its own (a packer
        # keeps a buffer), used by this room only.
        self._pack: Callable[[object], bytes] = msgpack.Packer().pack
        #: Set once the log grew as much as `wait_grown` waits for: entries, bytes to go.
        self._grown: trio.Event | None = None
        self._grown_entries = 0
        self._grown_bytes = 0

    def bind(self, limits: ReplayLimits | None) -> None:
        """Keep a log within ``limits`` (None: none), before the room starts."""
        self.limits = limits
        self._state.keep_frames = limits.max_messages if limits is not None else 0
        self._state.frames_expire_after = limits.max_age if limits is not None else 0.0

    async def load(self) -> None:
        """Read where the stored log ends (before ``on_start``).

        Raises:
            StorageError: the backend failed.
        """
        if self.limits is None:
            return
        state = self._state
        self.head = await state.storage.last_frame_seq(state.room)
        self.active = self.head > 0

    def activate(self) -> None:
        """Log from now on: a resumable session is being admitted.

        The first entry of a log is a mark for nobody, so the storage remembers that
        the room logs, and where, even before it sends anything.
        """
        if self.limits is None or self.active:
            return
        self.active = True
        self._append("bytes", b"", _NOBODY, ())

    async def wait_grown(self, entries: int, size: int) -> None:
        """Wait until ``entries`` more entries, or ``size`` more bytes of payload, are logged."""
        self._grown_entries = entries
        self._grown_bytes = size
        self._grown = grown = trio.Event()
        try:
            await grown.wait()
        finally:
            self._grown = None

    def cursor(self, sent: int) -> ReplayCursor | None:
        """The place of a session sent ``sent`` frames so far; None without a log."""
        return ReplayCursor(sent, self.head) if self.active else None

    def broadcast(
        self,
        wire: EntryWire,
        payload: bytes,
        exclude: Iterable[str] | None,
        only: tuple[str, ...] | None = None,
    ) -> None:
        """Log a broadcast to every session of the room but ``exclude`` (or ``only`` to those)."""
        self._append(wire, payload, None, tuple(exclude or ()), only)

    def send(self, wire: EntryWire, payload: bytes, session_id: str) -> None:
        """Log a frame sent to the session ``session_id`` only."""
        self._append(wire, payload, session_id, ())

    def _append(
        self,
        wire: EntryWire,
        payload: bytes,
        to: str | None,
        exclude: tuple[str, ...],
        only: tuple[str, ...] | None = None,
    ) -> None:
        state = self._state
        if state.failed is not None:
            return  # the room is restarting: nothing it sends now leaves
        now = self._clock()
        head = self.head
        # A new log numbers from the clock, past any number a lost log may have used.
        seq = head + 1 if head else max(int(now * 1_000_000), 1)
        # Tuples, not lists: msgpack packs both as the same array (a send's ``exclude`` is
        # the empty tuple, not a list made per frame).
        if only is None:
            packed = self._pack((head, now, wire, payload, to, exclude))
        else:
            packed = self._pack((head, now, wire, payload, to, exclude, only))
        state.log_frame(LoggedFrame(seq, packed))
        self.head = seq
        grown = self._grown
        if grown is not None:
            self._grown_entries -= 1
            self._grown_bytes -= len(payload)
            if self._grown_entries <= 0 or self._grown_bytes <= 0:
                grown.set()
        # A `LogEntry` only where one is kept: each reply of a relayed session is logged.
        if self._entries is not None:
            self._remember(LogEntry(seq, head, now, wire, payload, to, exclude, only))
        elif self._loading is not None:
            self._loading.append(LogEntry(seq, head, now, wire, payload, to, exclude, only))

    def _remember(self, entry: LogEntry) -> None:
        """Keep ``entry`` in memory, and no more than a replay could ever use."""
        entries = self._entries
        limits = self.limits
        assert entries is not None
        assert limits is not None
        entries.append(entry)
        self._entry_bytes += entry.size
        while len(entries) > limits.max_messages or (
            self._entry_bytes > limits.max_bytes and len(entries) > 1
        ):
            self._entry_bytes -= entries.popleft().size

    async def plan(self, session_id: str, cursor: ReplayCursor | None, seen: int) -> ReplayPlan:
        """The frames to replay to a client of ``session_id`` that has seen ``seen``.

        Called holding the room's gate: no event of the room sends meanwhile, and what
        others send joins the open batch, which is read here too.

        Raises:
            StorageError: the backend failed.
        """
        limits = self.limits
        if limits is None or not self.active or cursor is None:
            return ReplayPlan(resync="the room kept no replay log for this session")
        if self._entries is None:
            loaded = await self._load()
            if isinstance(loaded, ReplayPlan):
                return loaded
            if self._entries is None:  # (a concurrent resume may have read it meanwhile)
                self._entries = deque()
                self._entry_bytes = 0
                for entry in loaded:
                    self._remember(entry)
        entries = list(self._entries)
        return _plan(_within(entries, limits, self._clock()), session_id, cursor, seen, self.head)

    async def _load(self) -> list[LogEntry] | ReplayPlan:
        """The whole log, oldest first: what is stored, and what is not durable yet.

        What the room appends while the read runs (a task of its own, outside the gate)
        is collected meanwhile, since it may be committed before the read ends.
        """
        state = self._state
        self._loading = loading = [LogEntry.unpack(frame) for frame in state.unsaved_frames()]
        try:
            stored = await state.storage.load_frames(state.room)
        finally:
            self._loading = None
        try:
            entries = [LogEntry.unpack(frame) for frame in stored]
        except ValueError as exc:
            return ReplayPlan(resync=f"the replay log could not be read: {exc}")
        by_seq = {entry.seq: entry for entry in (*entries, *loading)}
        return [by_seq[seq] for seq in sorted(by_seq)]


def _within(entries: list[LogEntry], limits: ReplayLimits, now: float) -> list[LogEntry]:
    """The newest of ``entries`` that are within ``limits``, oldest first."""
    oldest = now - limits.max_age
    size = 0
    first = len(entries)
    for index in range(len(entries) - 1, -1, -1):
        entry = entries[index]
        size += len(entry.payload)
        if len(entries) - index > limits.max_messages or size > limits.max_bytes:
            break
        if entry.at < oldest:
            break
        first = index
    return entries[first:]


def _plan(
    entries: list[LogEntry], session_id: str, cursor: ReplayCursor, seen: int, head: int
) -> ReplayPlan:
    # The log covers (start, head]: every entry after `start` is in `entries`.
    start = entries[0].prev if entries else head
    positions = {start, *(entry.seq for entry in entries)}
    if cursor.seq not in positions:
        return ReplayPlan(resync=f"the replay log no longer reaches back to frame {seen}")
    mine = [entry for entry in entries if entry.is_for(session_id)]
    split = sum(1 for entry in mine if entry.seq <= cursor.seq)
    if seen <= cursor.count:
        # The client missed the last frames sent before the cursor, and all after it.
        missed = cursor.count - seen
        if missed > split:
            return ReplayPlan(resync=f"the replay log no longer reaches back to frame {seen}")
        return ReplayPlan(mine[split - missed :])
    ahead = seen - cursor.count
    if ahead > len(mine) - split:
        return ReplayPlan(
            resync=f"the client has seen {seen} frames, more than the session was sent"
        )
    return ReplayPlan(mine[split + ahead :])


def transcode(
    entry: LogEntry,
    wire: Literal["json", "msgpack"],
    decode: Callable[[Literal["json", "msgpack"], bytes], Message],
    encode: Callable[[Message], bytes],
) -> bytes:
    """``entry``'s payload in ``wire``: as stored, or decoded from its own and encoded.

    Raises:
        DecodeError: the stored message is not one of the room's server messages now.
    """
    if entry.wire == wire or entry.wire == "bytes":
        return entry.payload
    return encode(decode(entry.wire, entry.payload))
