"""Encoded outbound frames and the bounded per-session queue that holds them.

A broadcast encodes its message once per wire format into one `Frame`; the same
object is put on every recipient's queue. Transports turn a frame into bytes once
(the embedded server caches the framed bytes on the object), so the per-recipient
cost of a broadcast is one append.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Final, cast, final

import outcome
import trio

from .._delivery import COALESCE, DROP_OLDEST
from .output_gate import Durability
from .stats import RoomCounters
from .turns import current_turn

__all__ = [
    "BINARY",
    "PING",
    "PONG",
    "TEXT",
    "Frame",
    "OutboundQueue",
    "QueueOverflow",
]

TEXT: Final = 0x1
BINARY: Final = 0x2
PING: Final = 0x9
PONG: Final = 0xA

#: At most this many payload bytes are joined into one write when a commit releases
#: frames; the writer, woken for the rest, sends them in batches of its own.
_RELEASE_BYTES: Final = 64 * 1024


@final
class Frame:
    """One outbound WebSocket message: an opcode and its payload.

    ``wire`` is a cache for transports that frame the payload themselves; it is
    filled the first time a transport needs it and then shared by every recipient.
    ``after`` is the output gate: the frame leaves only once its room's writes up to
    that sequence number are durable (0: at once). ``policy`` is its delivery policy's
    code (`trio_rooms._delivery`; 0: disconnect) and ``key`` its coalescing key; both
    are the message's, so one frame serves every recipient.
    """

    __slots__ = ("after", "key", "opcode", "payload", "policy", "wire")

    def __init__(
        self, opcode: int, payload: bytes, after: int = 0, policy: int = 0, key: object = None
    ) -> None:
        self.opcode: int = opcode
        self.payload: bytes = payload
        self.after: int = after
        self.policy: int = policy
        self.key: object = key
        self.wire: bytes | None = None

    def plain(self) -> Frame:
        """The same frame under the disconnect policy."""
        frame = Frame(self.opcode, self.payload, self.after)
        frame.wire = self.wire
        return frame

    def __repr__(self) -> str:
        return f"Frame(opcode={self.opcode:#x}, payload={self.payload[:40]!r})"


def _tail(opcode: int, rest: bytes) -> Frame:
    """The unwritten rest of a frame a transport wrote in part: it goes next, whatever holds.

    Its ``after`` of -1 tells it apart: no gate holds it, and `OutboundQueue.clear`
    keeps it (the client has the frame's start).
    """
    tail = Frame(opcode, b"", -1)
    tail.wire = rest
    return tail


#: The `Frame.policy` of a mark that stands for ``key`` frames skipped (dropped or
#: coalesced) in a compacted queue: not a policy, never written.
_SKIPPED: Final = 3


#: Where a queue not bound to a room counts (made once: a session's placeholder queue
#: would otherwise make its own, with a `Counters`, per handshake). Shared, so never
#: read: a queue whose counts are read is given its own (``counters=``).
_UNCOUNTED: Final = RoomCounters()


class QueueOverflow(Exception):
    """The queue went past one of its bounds."""


@final
class _NoFrames(deque[Frame]):
    """The queue of every `OutboundQueue` never sent a frame: empty, and kept so.

    An empty deque costs 760 bytes, per idle session; a queue makes its own at its
    first frame (`OutboundQueue._own_frames`). Adding to this one is a bug, said loudly.
    """

    def append(self, x: Frame, /) -> None:
        raise RuntimeError("a frame was queued without OutboundQueue._own_frames")

    appendleft = extend = extendleft = append  # pyright: ignore[reportAssignmentType] - all refused


_NO_FRAMES: Final = _NoFrames()


@final
class OutboundQueue:
    """A bounded FIFO of frames with a single consumer, the session's writer.

    ``put`` never blocks; it raises `QueueOverflow` (the caller applies the
    slow-consumer policy) when the queue is past one of its bounds:

    - ``max_bytes`` is a ceiling, judged at once: a frame that would take the queue
      past it is refused. A frame counts for at most half of it, so two frames of any
      size (a broadcast of a ``max_message_size`` message is larger) always fit.
    - ``max_messages`` is judged by time: a burst may queue more frames than that
      before the writer gets to run, so a frame is refused only once the queue has
      stayed at or over ``max_messages`` for longer than ``timeout`` seconds (the
      writer taking frames and leaving fewer ends the spell).

    Control frames (pings, pongs) are small and bypass the bounds, so keepalive works
    even when the queue is full.

    That is for frames of the disconnect policy. The others are judged at once (see
    `trio_rooms._delivery`): a drop-oldest frame that finds the queue full drops the
    oldest queued frame of its policy (itself when there is none); a coalesced frame
    drops the queued frame of its key, and only a new key is judged as above. What
    is dropped stays in the deque, dead, until the writer comes to it (or it is
    compacted), so that dropping costs no search; the writer skips it, and tells a
    client that counts frames (``marker``) how many it skipped, where it skipped them.
    """

    __slots__ = (
        "_behind",
        "_behind_bytes",
        "_bytes",
        "_closed",
        "_dead",
        "_direct_ready",
        "_droppable",
        "_frames",
        "_largest",
        "_latest",
        "_over_since",
        "_paced",
        "_replay_left",
        "_start",
        "_turn",
        "_waiter",
        "counters",
        "direct",
        "durability",
        "forward",
        "marker",
        "max_bytes",
        "max_messages",
        "parks",
        "timeout",
        "watching",
    )

    def __init__(
        self,
        max_messages: int,
        max_bytes: int,
        timeout: float = math.inf,
        durability: Durability | None = None,
        counters: RoomCounters | None = None,
    ) -> None:
        #: The output gate: a frame leaves once ``durability.seq`` reached its ``after``.
        self.durability: Durability = durability if durability is not None else Durability()
        self.watching: bool = False
        self.max_messages: int = max_messages
        self.max_bytes: int = max_bytes
        self.timeout: float = timeout
        self._largest = max(max_bytes // 2, 1)  # the most one frame counts for
        #: When the queue went over ``max_messages`` (None: it is not over).
        self._over_since: float | None = None
        self._frames: deque[Frame] = _NO_FRAMES  # its own at the first frame
        self._bytes = 0
        self._closed = False
        #: The writer, parked on an empty queue; while its session runs without one
        #: (`start_lazily`) or is parked (`park`), what to call once it needs one.
        self._waiter: trio.lowlevel.Task | Callable[[], None] | None = None
        #: What makes the running session's writer, until it did (`start_lazily`).
        self._start: Callable[[], None] | None = None
        self._direct_ready = False
        #: The run loop's turn in which `put_first` last wrote at once (-1: never).
        self._turn = -1
        #: A replay not yet queued, then the frames put behind it (None: no replay).
        self._paced: deque[Frame] | None = None
        self._replay_left = 0
        #: Frames put behind the replay, and their bytes (counted as in the queue).
        self._behind = 0
        self._behind_bytes = 0
        #: Set by a transport that can write without waiting: writes the frames' bytes
        #: (in one write) if the socket takes them and returns what it did not take
        #: (None: nothing was written; the frames stay queued).
        self.direct: Callable[[list[Frame]], bytes | None] | None = None
        #: Set by a connection whose ``direct`` only gathers frames for another node (a
        #: relay's): sends what it gathered, without waiting (`Durability.advance`).
        self.forward: Callable[[], None] | None = None
        #: Its reader can park (a session's, not a relay's): only then may the transport
        #: ask it to (`trio_rooms._core.connection.ConnectionParked`).
        self.parks: bool = False
        #: The queued coalesced frame of each key: the only one of its key written.
        self._latest: dict[object, Frame] = {}
        #: The queued drop-oldest frames that are still to be written, in queue order
        #: (made at the first: an empty deque costs 760 bytes, per idle session).
        self._droppable: deque[Frame] | None = None
        #: Entries of ``_frames`` that are not written: dropped frames, and marks.
        self._dead = 0
        #: Where the policies' drops are counted (the room's). Without ``counters``, a
        #: sink shared by every queue not bound to a room: not to be read.
        self.counters: RoomCounters = counters if counters is not None else _UNCOUNTED
        #: Makes the frame that tells a client that counts frames (to resume with a
        #: replay) how many it was not sent; None: its client is not told.
        self.marker: Callable[[int], Frame] | None = None

    @property
    def queued_bytes(self) -> int:
        """Payload bytes queued, each frame counted up to half of ``max_bytes``."""
        return self._bytes

    def __len__(self) -> int:
        """Frames queued to be written (those dropped by a policy are not counted)."""
        return len(self._frames) - self._dead

    def put(self, frame: Frame) -> bool:
        """Queue ``frame``; return False if the queue is closed (the frame is dropped)."""
        if self._closed:
            return False
        if self._paced is not None:
            return self._put_behind(frame)
        size = len(frame.payload)
        if size > self._largest:
            size = self._largest
        if frame.policy:
            if not self._admit_policy(frame, size):
                return True  # dropped by its own policy
        elif (
            len(self._frames) - self._dead >= self.max_messages
            or self._bytes + size > self.max_bytes
        ):
            self._check_bounds(size)
        # Every frame is appended here, inline: this is every send's path.
        frames = self._frames
        if frames is _NO_FRAMES:
            frames = self._frames = deque()
        frames.append(frame)
        self._bytes += size
        waiter = self._waiter
        if waiter is not None:
            if frame.after > self.durability.seq:
                self.durability.watch(self)  # held by the output gate: wake it once it may go
            elif isinstance(waiter, trio.lowlevel.Task):
                self._waiter = None  # `_wake`'s common case inline: a call less per frame
                trio.lowlevel.reschedule(waiter)
            else:
                self._wake()
        return True

    def _own_frames(self) -> deque[Frame]:
        frames = self._frames
        if frames is _NO_FRAMES:
            frames = self._frames = deque()
        return frames

    def _full(self, size: int) -> bool:
        return (
            len(self._frames) - self._dead >= self.max_messages
            or self._bytes + size > self.max_bytes
        )

    def _admit_policy(self, frame: Frame, size: int) -> bool:
        """Make room for a frame of the drop-oldest or coalesce policy; False: drop it.

        `put` appends it: the dead entries are compacted first if they would outnumber
        the live ones (with it) by more than 16.
        """
        counters = self.counters
        if frame.policy == COALESCE:
            old = self._latest.get(frame.key)
            if old is not None:
                self._bury(old)
                counters.coalesce()
            if self._full(size):
                self._check_bounds(size)  # a new key in a full queue: the disconnect rule
            self._latest[frame.key] = frame
        else:
            droppable = self._droppable
            if droppable is None:
                droppable = self._droppable = deque()
            while droppable and self._full(size):
                self._bury(droppable.popleft())
                counters.drop_oldest()
            if self._full(size):
                counters.drop_oldest()
                return False  # no older frame of its policy to make room: it goes itself
            droppable.append(frame)
        # Compacted before `put` appends it, which leaves the queue compacting after would:
        # the dead run's mark (at the end), then the frame.
        if self._dead > len(self._frames) + 1 - self._dead + 16:
            self._compact()
        return True

    def _bury(self, frame: Frame) -> None:
        """``frame`` is not to be written: it stays queued, dead, for the writer to skip."""
        self._dead += 1
        length = len(frame.payload)
        self._bytes -= length if length < self._largest else self._largest

    def _taken(self, frame: Frame) -> int:
        """The writer took ``frame`` (of a policy): 0 if it is live, else how many it skips."""
        policy = frame.policy
        if policy == COALESCE:
            if self._latest.get(frame.key) is frame:
                del self._latest[frame.key]
                return 0
        elif policy == DROP_OLDEST:
            droppable = self._droppable
            if droppable and droppable[0] is frame:
                droppable.popleft()
                return 0
        self._dead -= 1
        return cast("int", frame.key) if policy == _SKIPPED else 1

    def _compact(self) -> None:
        """Take the dead entries out, leaving a mark in their place for a counting client."""
        kept: deque[Frame] = deque()
        droppable = iter(self._droppable or ())
        next_droppable = next(droppable, None)
        counting = self.marker is not None
        skipped = after = marks = 0
        for frame in self._frames:
            policy = frame.policy
            if policy == COALESCE:
                live = self._latest.get(frame.key) is frame
            elif policy == DROP_OLDEST:
                live = frame is next_droppable
                if live:
                    next_droppable = next(droppable, None)
            else:
                live = policy != _SKIPPED
            if not live:
                skipped += cast("int", frame.key) if policy == _SKIPPED else 1
                after = max(after, frame.after)
                continue
            if skipped and counting:
                kept.append(Frame(0, b"", after, _SKIPPED, skipped))
                marks += 1
            skipped = after = 0
            kept.append(frame)
        if skipped and counting:
            kept.append(Frame(0, b"", after, _SKIPPED, skipped))
            marks += 1
        self._frames = kept
        self._dead = marks

    def _mark(self, batch: list[Frame], skipped: int) -> int:
        """Tell a counting client, in ``batch``, that ``skipped`` frames were not sent."""
        marker = self.marker
        if marker is None:
            return 0
        frame = marker(skipped)
        batch.append(frame)
        return len(frame.payload)

    def put_paced(self, frames: list[Frame], after: int = 0) -> None:
        """Queue ``frames`` (a replay) before any frame put after them, a part at a time.

        They do not count against the bounds: the queue takes in a part of them (up to
        half of each bound) each time the writer has taken what it holds, so a replay
        is paced by the socket, not refused as a burst. Frames put meanwhile wait
        behind it, and count against the bounds as if queued.
        """
        if not frames or self._closed:
            return
        for frame in frames:
            frame.after = after
        self._paced = deque(frames)
        self._replay_left = len(frames)
        self._refill()
        if self._waiter is not None:
            self._wake()

    def _put_behind(self, frame: Frame) -> bool:
        paced = self._paced
        assert paced is not None
        if frame.policy:
            frame = frame.plain()  # a replay is short: frames behind it are kept, in order
        # Bounded as if queued, apart from the replay ahead of them.
        size = min(len(frame.payload), self._largest)
        if self._behind_bytes + size > self.max_bytes:
            raise QueueOverflow
        if self._behind >= self.max_messages:
            self._check_spell()
        paced.append(frame)
        self._behind += 1
        self._behind_bytes += size
        return True

    def _refill(self) -> None:
        """Move the next part of the replay (and what waits behind it) into the queue."""
        paced = self._paced
        if paced is None:
            return
        frames = self._own_frames()
        largest = self._largest
        count, size = max(self.max_messages // 2, 1), self.max_bytes // 2
        while paced and (len(frames) < count and self._bytes < size):
            frame = paced.popleft()
            length = min(len(frame.payload), largest)
            if self._replay_left:
                self._replay_left -= 1
            else:
                self._behind -= 1
                self._behind_bytes -= length
            frames.append(frame)
            self._bytes += length
        if not paced:
            self._paced = None

    def _check_bounds(self, size: int) -> None:
        """Raise `QueueOverflow` if a frame of ``size`` bytes may not be queued now.

        Only called once the queue is at a bound, so the clock is read off the hot path.
        """
        if self._bytes + size > self.max_bytes:
            raise QueueOverflow
        if len(self._frames) - self._dead < self.max_messages:
            return
        self._check_spell()

    def _check_spell(self) -> None:
        """Raise `QueueOverflow` if the queue has been at ``max_messages`` for too long."""
        now = trio.current_time()
        since = self._over_since
        if since is None:
            self._over_since = now
        elif now - since > self.timeout:
            raise QueueOverflow

    def allow_direct(self) -> None:
        """Let the next `put_now` write straight to the transport (once).

        The session's handler allows it before each message: the first reply then
        skips a wake-up of the writer, and the replies after it are batched as usual.
        """
        self._direct_ready = True

    def put_now(self, frame: Frame) -> bool:
        """Like `put`, but write ``frame`` at once if allowed (`allow_direct`)."""
        if self._direct_ready:
            self._direct_ready = False
            if self._write_direct(frame):
                return True
        return self.put(frame)

    def put_first(self, frame: Frame) -> bool:
        """Like `put`, but the first frame of a turn of the run loop is written at once.

        For fan-out: the writer is not woken for it, so a broadcast to a room of idle
        sessions costs one write per recipient and no task step (`trio_rooms._core.turns`).
        A frame put in the same turn after it is queued and wakes the writer, which sends
        the rest of a burst in one batch.
        """
        # The writer is idle and the transport writes without waiting (not behind ASGI,
        # where reading the turn would only cost its counting task a step per turn).
        if self._waiter is not None and self.direct is not None:
            turn = current_turn()
            if turn != self._turn and self._write_direct(frame):
                self._turn = turn
                return True
        return self.put(frame)

    def _write_direct(self, frame: Frame) -> bool:
        """Write ``frame`` through ``direct`` if the writer is idle with nothing queued.

        The writer must be parked: then it is not in the middle of a write of its own.
        What the transport did not take goes first in the queue, for the writer.
        """
        direct = self.direct
        if direct is None or self._waiter is None or self._frames or self._closed:
            return False
        if self._paced is not None:
            return False  # a replay goes first
        if frame.after > self.durability.seq:
            return False  # held by the output gate
        rest = direct([frame])
        if rest is None:
            return False
        if rest:  # a partial write
            self._own_frames().append(_tail(frame.opcode, rest))
            self._wake()
        return True

    def put_control(self, frame: Frame) -> None:
        """Queue a control frame, ignoring the bounds (its payload is at most 125 bytes).

        Written at once if the writer is idle (a keepalive ping or a pong then starts no
        writer for a session that has none, `start_lazily`).
        """
        if not self._closed and not self._write_direct(frame):
            self._own_frames().append(frame)
            if self._waiter is not None:
                self._wake()

    def clear(self) -> None:
        """Drop everything queued, but the rest of a frame partly written already."""
        frames = self._frames
        head = frames[0] if frames and frames[0].after < 0 else None
        frames.clear()
        if head is not None:  # dropped, it would leave the client half a frame
            frames.append(head)
        self._latest.clear()
        self._droppable = None
        self._dead = 0
        self._bytes = 0
        self._over_since = None
        self._paced = None
        self._replay_left = self._behind = self._behind_bytes = 0

    def close(self) -> None:
        """Accept nothing more; the consumer drains what is queued, then gets ``[]``."""
        self._closed = True
        if self._waiter is not None:
            self._wake()

    def held_past(self, seq: int) -> bool:
        """Whether all `release` would do at ``seq`` is watch again: the next frame waits
        for a later commit (and nothing else is to be done: no replay, not closed)."""
        frames = self._frames
        return bool(frames) and frames[0].after > seq and self._paced is None and not self._closed

    def release(self, seq: int) -> None:
        """`Durability` moved on to ``seq``: write what it let go at once if the writer is idle.

        The committer calls this for every waiting session in one go, so the frames a
        commit held leave without a wake-up of each writer (the cost that matters when
        a hundred sessions each wait for their reply), and in one write per session
        (a commit that held several broadcasts). What the socket does not take, or
        what is still held, is left to the writer.
        """
        if self._waiter is None:
            return  # busy writing: it looks at the queue again when done
        frames = self._frames
        direct = self.direct
        if direct is not None and not self._closed and frames and frames[0].after <= seq:
            released: list[Frame] = []
            size = data_bytes = 0
            largest = self._largest
            while frames and frames[0].after <= seq and size < _RELEASE_BYTES:
                if frames[0].policy:
                    break  # it may be dead, or need a mark first: the writer's to sort out
                frame = frames.popleft()
                released.append(frame)
                length = len(frame.payload)
                size += length
                if frame.opcode <= BINARY:
                    data_bytes += length if length < largest else largest
            rest = direct(released) if released else None
            if rest is None:
                frames.extendleft(reversed(released))  # not written: the writer's again
            else:
                self._bytes -= data_bytes
                if rest:  # a partial write: the writer sends the rest first
                    frames.appendleft(_tail(released[-1].opcode, rest))
        self._refill()
        if self._over_since is not None and len(frames) - self._dead < self.max_messages:
            self._over_since = None
        if frames and frames[0].after > seq and not self._closed:
            # Still held, by a later commit: waking the writer would only make it
            # watch again (a wasted task step per waiting session and commit).
            self.durability.watch(self)
        elif frames or self._closed:
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        assert waiter is not None
        if isinstance(waiter, trio.lowlevel.Task):
            trio.lowlevel.reschedule(waiter)
        elif waiter is self._start:
            # No writer yet: the one this makes takes the queue, in order (meanwhile the
            # queue is as a busy writer's: nothing goes around it).
            self._start = None
            waiter()
        elif self._write_parked():
            self._waiter = waiter  # all written: the session stays parked
        else:
            waiter()  # frames stay queued, in order, for the writer it wakes

    @property
    def idle(self) -> bool:
        """Whether the writer waits with nothing queued, held or to close: it may `park`."""
        waiter = self._waiter
        return (
            (
                isinstance(waiter, trio.lowlevel.Task)
                or (waiter is not None and waiter is self._start)
            )
            and not self._frames
            and self._paced is None
            and not self._closed
        )

    def start_lazily(self, start: Callable[[], None]) -> None:
        """The session runs (again) with no writer: ``start`` makes one once it is needed.

        Until then a frame allowed to go at once (`put_now`, `put_first`, `release`) is
        written through ``direct``; anything that needs a writer (a frame queued or
        held, a partial write, the close) calls ``start``, once, and the writer it
        starts takes the queue from there. Called with what a parked session left
        queued (`park`), it starts the writer at once.
        """
        assert not isinstance(self._waiter, trio.lowlevel.Task), "a writer waits already"
        self._start = self._waiter = start
        if self._frames or self._paced is not None or self._closed:
            self._wake()

    def park(self, wake: Callable[[], None]) -> None:
        """The session parks: its writer's `get_batch` returns ``[]``, and it ends.

        Until `start_lazily`, a frame put is written through ``direct`` at once
        (nothing else is queued, so order holds); one that cannot be, wholly (a partial
        write, a policy, the close), stays queued and ``wake`` is called, once.
        """
        writer = self._waiter
        assert writer is not None, "park() needs an idle writer, or none"
        assert self.idle, "park() needs an idle writer, or none"
        self._waiter = wake
        self._start = None
        if isinstance(writer, trio.lowlevel.Task):
            trio.lowlevel.reschedule(writer, outcome.Value(True))

    def unpark(self) -> None:
        """The session runs again: no wake-up of the parked session (`start_lazily` next)."""
        if not isinstance(self._waiter, trio.lowlevel.Task):
            self._waiter = None

    def _write_parked(self) -> bool:
        """Parked: write what is queued through ``direct``; False if a writer must."""
        frames = self._frames
        if not frames:
            return not self._closed
        direct = self.direct
        if direct is None or self._closed or self._paced is not None:
            return False
        seq = self.durability.seq
        if frames[0].after > seq and not frames[0].policy:
            self.durability.watch(self)  # `release` writes it, or wakes
            return True
        batch: list[Frame] = []
        size = data_bytes = 0
        largest = self._largest
        for frame in frames:
            if frame.policy or frame.after > seq or size >= _RELEASE_BYTES:
                return False  # the writer's to sort out (and the parked session is rare)
            batch.append(frame)
            length = len(frame.payload)
            size += length
            if frame.opcode <= BINARY:
                data_bytes += length if length < largest else largest
        rest = direct(batch)
        if rest is None:
            return False
        frames.clear()
        self._bytes -= data_bytes
        self._over_since = None
        if rest:  # the writer sends the rest first
            frames.append(_tail(batch[-1].opcode, rest))
            return False
        return True

    def _abort_wait(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def get_batch(self, max_bytes: int) -> list[Frame]:
        """Wait for frames and take them all (at least one, then up to ``max_bytes``).

        Frames the output gate holds stay queued, and so do those behind them. Frames a
        policy dropped are skipped (a counting client gets a mark in their place).
        Returns ``[]`` once the queue is closed and empty, or its session parks.
        """
        durability = self.durability
        while True:
            while not self._frames or self._frames[0].after > durability.seq:
                if not self._frames:
                    if self._paced is not None:
                        self._refill()
                        continue
                    if self._closed:
                        return []
                else:
                    durability.watch(self)
                # The writer parks here, with no coroutine of its own to wait in (one
                # consumer: parked directly, cheaper than a ParkingLot on the put path).
                if self._waiter is not None:
                    raise trio.BusyResourceError("another task is already waiting on this queue")
                self._waiter = trio.lowlevel.current_task()
                # A bound method, not a closure: one object for the wait, not three (its
                # cell and their tuple), kept as long as an idle session's writer waits.
                if await trio.lowlevel.wait_task_rescheduled(self._abort_wait) is True:
                    return []  # parked (`park`): the writer ends, and a later one goes on
            frames = self._frames  # (after the wait: a compaction replaces the deque)
            batch: list[Frame] = []
            size = data_bytes = skipped = 0
            largest = self._largest
            seq = durability.seq
            while frames and size < max_bytes and frames[0].after <= seq:
                frame = frames.popleft()
                if frame.policy:
                    gone = self._taken(frame)
                    if gone:
                        skipped += gone
                        continue
                if skipped:
                    size += self._mark(batch, skipped)
                    skipped = 0
                batch.append(frame)
                length = len(frame.payload)
                size += length
                if frame.opcode <= BINARY:
                    data_bytes += length if length < largest else largest
            if skipped:
                self._mark(batch, skipped)
            self._bytes -= data_bytes
            if self._paced is not None:
                self._refill()  # the next part of a replay, now that the socket took this one
            if (
                self._over_since is not None
                and max(len(frames) - self._dead, self._behind) < self.max_messages
            ):
                self._over_since = None  # the writer caught up: the queue is under its bound
            if batch:
                return batch
