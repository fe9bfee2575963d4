"""``RoomState``: a room's storage as its events see it: cached, coalesced, gated.

Reads after the first come from memory. Writes go into the open batch of the event
that makes them and are sealed when the event ends (its gate is released); one
committer task writes everything sealed so far as one `Commit`, so the events that run
while a commit is in flight share the next one (a few fsyncs for a hundred sessions).

Each batch reserves the next sequence number. A frame sent while writes are not yet
durable carries the newest one (`Frame.after`), and no session writer puts it on a
socket before `Durability.seq` reaches it: the output gate, so no client sees state
that a crash then loses. A commit that fails is final for the room: the frames held
behind it are never sent, and the room is restarted from storage (see `RoomRunner`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import final

import attrs
import trio

from .._errors import OwnershipLostError, StorageError
from .commit_route import CommitRoute
from .gate import Gate
from .output_gate import Durability
from .storage import Commit, LoggedFrame, RecordWrite, Storage, StoredAlarm

__all__ = ["RoomState"]

_logger = logging.getLogger("trio_rooms")

_Value = bytes | None  # None: deleted


@final
@attrs.define
class _Written:
    """The outcome of one record write, once its commit is done."""

    done: trio.Event = attrs.field(factory=trio.Event)
    written: bool = False
    error: StorageError | None = None


@final
class _Batch:
    """Writes not yet committed, merged (the last write of a key wins)."""

    # A plain class: one is made per event, and attrs factories of generic aliases
    # (``dict[str, _Value]``) cost several times a ``{}``.
    __slots__ = ("alarms", "frames", "records", "values")

    def __init__(self) -> None:
        self.values: dict[str, _Value] = {}
        self.alarms: dict[str, StoredAlarm | None] = {}
        self.records: list[tuple[RecordWrite, _Written]] = []
        #: Frames for the replay log, in order (see `RoomLog`).
        self.frames: list[LoggedFrame] = []

    def merge(self, other: _Batch) -> None:
        self.values.update(other.values)
        self.alarms.update(other.alarms)
        self.records.extend(other.records)
        self.frames.extend(other.frames)

    def __bool__(self) -> bool:
        return bool(self.values or self.alarms or self.records or self.frames)


@final
class RoomState:
    """The storage of one live room: its cache, its batches and its commits.

    Args:
        storage: The backend.
        room: The room's name.
        gate: The room's input gate: writes made under it are sealed when it is let go.
        cache: Keep values read (False with a backplane: another node may write them).
        max_cached: Clean values kept at most; the least recently used go first.
    """

    def __init__(
        self, storage: Storage, room: str, gate: Gate, *, cache: bool, max_cached: int
    ) -> None:
        self.storage = storage
        self.room = room
        self.durability = Durability()
        self.gate = gate
        self._caching = cache
        self._max_cached = max_cached
        self._cache: dict[str, _Value] = {}
        #: Puts and deletes since the last one that was a schedule point (RoomStorage).
        self.writes_since_yield = 0
        self._open = _Batch()
        self._sealed = _Batch()
        self._in_flight = _Batch()
        #: The open transaction's writes, and the task whose they are.
        self._transaction: _Batch | None = None
        self._transaction_task: trio.lowlevel.Task | None = None
        #: The newest sequence number reserved by a batch, and the open batch's (0: none).
        self._reserved = 0
        self._open_seq = 0
        self._sealed_seq = 0
        #: The committer's task while it waits for a batch to be sealed (parked, not an
        #: `Event` set at every seal: most seals come while a commit is in flight).
        self._committer: trio.lowlevel.Task | None = None
        self._committed = trio.lowlevel.ParkingLot()
        #: Set once a commit failed (the room is restarting) or was refused by the fence
        #: (`OwnershipLostError`: another node owns the room); nothing more is written.
        self.failed: StorageError | None = None
        #: What the committer reports a failure to (`run_committer`'s ``on_failure``).
        self._on_failure: Callable[[StorageError], None] | None = None
        #: Called with each new durable sequence number (what else waits for it).
        self.on_durable: Callable[[int], None] | None = None
        #: The replay log's count bound, passed with each commit that logs frames.
        self.keep_frames = 0
        #: Seconds after which the log's entries are of no use (`Commit.frames_expire_after`).
        self.frames_expire_after = 0.0
        #: The room's fencing token while this node owns it (`Commit.fence`; 0: not fenced).
        self.fence = 0
        #: While a cluster owns the room here: the route its commits take (None: storage's).
        self.route: CommitRoute | None = None

    def bind(self, storage: Storage, *, cache: bool, max_cached: int) -> None:
        """Use ``storage`` (the room's `Rooms` binds it before the room starts)."""
        self.storage = storage
        self._caching = cache
        self._max_cached = max_cached

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``: the newest write, else the cache, else the backend."""
        found, value = self._unsaved(key)
        if found:
            return value
        if key in self._cache:
            value = self._cache.pop(key)
            self._cache[key] = value  # most recently used
            return value
        value = await self.storage.get(self.room, key)
        found, newer = self._unsaved(key)  # written while we read
        if found:
            return newer
        if self._caching:
            self._remember(key, value)
        return value

    def _unsaved(self, key: str) -> tuple[bool, _Value]:
        transaction = self._transaction
        batches = (self._open, self._sealed, self._in_flight)
        if transaction is not None and self._in_transaction():
            batches = (transaction, *batches)
        for batch in batches:
            values = batch.values
            if key in values:
                return True, values[key]
        return False, None

    def _remember(self, key: str, value: _Value) -> None:
        cache = self._cache
        cache[key] = value
        if len(cache) > self._max_cached:
            del cache[next(iter(cache))]

    # ------------------------------------------------------------------ writes

    def put(self, key: str, value: bytes | None) -> None:
        """Write ``value`` under ``key`` (None deletes it); committed soon, atomically with
        the other writes of the same event."""
        self._batch_for_write().values[key] = value
        self._seal_unless_gated()

    def put_alarm(self, name: str, alarm: StoredAlarm | None) -> None:
        """Set (or, with None, cancel) the alarm ``name``, like `put`."""
        self._batch_for_write().alarms[name] = alarm
        self._seal_unless_gated()

    def save_record(self, write: RecordWrite) -> None:
        """Commit a session record with the writes made so far, like `put`: not waited for.

        The frames sent after it wait for it instead (the output gate).
        """
        self._batch_for_write()
        self._open.records.append((write, _Written()))
        self._seal_unless_gated()

    async def write_record(self, write: RecordWrite) -> bool:
        """Commit a session record with the writes made so far; whether it was written.

        It is committed at once, with the writes of the event made so far (not with
        those of a transaction still open), and waited for.

        Raises:
            StorageError: the commit failed.
        """
        written = _Written()
        self._batch_for_write()  # checks and reserves; a record never joins a transaction
        self._open.records.append((write, written))
        self.seal()  # waited for here: it cannot wait for the event (or transaction) to end
        await written.done.wait()
        if written.error is not None:
            raise written.error
        return written.written

    def log_frame(self, frame: LoggedFrame) -> None:
        """Append ``frame`` to the replay log with the writes made so far, like `put`.

        Never part of a transaction: the frame is sent whether or not it commits.
        """
        # `_batch_for_write` and `_reserve` inline (a resumable session's every frame):
        # only a failed room needs the former, which raises.
        if self.failed is not None:
            self._batch_for_write()
        if not self._open_seq:
            self._reserved += 1
            self._open_seq = self._reserved
            self.gate.dirty = True
        self._open.frames.append(frame)
        if not self.gate.held:
            self.seal()

    def unsaved_frames(self) -> list[LoggedFrame]:
        """The replay log's frames that are not durable yet, oldest first."""
        return [*self._in_flight.frames, *self._sealed.frames, *self._open.frames]

    def _batch_for_write(self) -> _Batch:
        failed = self.failed
        if isinstance(failed, OwnershipLostError):
            raise OwnershipLostError(self.room, self.fence) from failed
        if failed is not None:
            raise StorageError(
                f"room {self.room!r}: an earlier commit failed; the room is restarting"
            ) from failed
        self._reserve()
        transaction = self._transaction
        if transaction is not None and self._in_transaction():
            return transaction  # joins the open batch, and its number, at its end
        return self._open

    def _reserve(self) -> None:
        """Give the open batch the next sequence number, if it has none yet."""
        if not self._open_seq:
            self._reserved += 1
            self._open_seq = self._reserved
            self.gate.dirty = True  # the event's release seals it (else `seal` did)

    def _in_transaction(self) -> bool:
        return self._transaction_task is trio.lowlevel.current_task()

    def _seal_unless_gated(self) -> None:
        if not self.gate.held:
            self.seal()  # a task outside any event: its write is a batch of its own

    def seal(self) -> None:
        """The writes made so far will be committed together: hand them to the committer.

        Once per event that wrote: the open batch becomes the sealed one if nothing is
        sealed yet (the emptied one is the next open batch), else only its parts that
        hold something are moved (an event usually writes one kind: a frame, a value).
        """
        seq = self._open_seq
        if not seq:
            return
        batch = self._open
        if self._sealed_seq:
            sealed = self._sealed
            if batch.frames:
                sealed.frames += batch.frames
                batch.frames = []
            if batch.values:
                sealed.values.update(batch.values)
                batch.values = {}
            if batch.alarms:
                sealed.alarms.update(batch.alarms)
                batch.alarms = {}
            if batch.records:
                sealed.records += batch.records
                batch.records = []
        else:  # the sealed batch is empty (`_sealed_seq` is 0 exactly then): swapped
            self._sealed, self._open = batch, self._sealed
        self._sealed_seq = seq
        self._open_seq = 0
        self._wake()

    def _wake(self) -> None:
        """Reschedule the committer if it waits for a sealed batch."""
        committer = self._committer
        if committer is not None:
            self._committer = None
            trio.lowlevel.reschedule(committer)

    def _abort_wait(self, _: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        self._committer = None
        return trio.lowlevel.Abort.SUCCEEDED

    # -------------------------------------------------------------- transactions

    def begin(self) -> None:
        """Start a transaction for the current task, which holds the gate.

        Its writes are kept apart, and seen only by its own reads, until `end`.
        """
        if self._transaction is not None:
            raise RuntimeError("transactions of one room do not nest")
        self._transaction = _Batch()
        self._transaction_task = trio.lowlevel.current_task()

    def end(self, *, commit: bool) -> None:
        """End the transaction: join its writes to the event's batch, or drop them."""
        transaction, self._transaction = self._transaction, None
        self._transaction_task = None
        if transaction is None or not commit or not transaction:
            return
        self._reserve()  # an update() inside may have sealed the batch it had reserved
        self._open.merge(transaction)
        self._seal_unless_gated()

    # -------------------------------------------------------------- output gate

    def pending(self) -> int:
        """The sequence number a frame sent now must wait for (0: none)."""
        reserved = self._reserved
        return reserved if reserved > self.durability.seq else 0

    async def wait_durable(self, seq: int) -> None:
        """Wait until the writes up to ``seq`` are durable.

        Raises:
            StorageError: a commit failed before they were.
        """
        while self.durability.seq < seq:
            if self.failed is not None:
                raise self.failed
            await self._committed.park()
        await trio.lowlevel.checkpoint()

    async def flush(self) -> None:
        """Seal what was written so far and wait until it is durable."""
        self.seal()
        await self.wait_durable(self._reserved)

    # -------------------------------------------------------------- committer

    async def run_committer(self, on_failure: Callable[[StorageError], None]) -> None:
        """Commit sealed batches until cancelled, or until a commit fails (or `abandon`)."""
        self._on_failure = on_failure
        while self.failed is None:
            if not self._sealed_seq:
                self._committer = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
                continue
            try:
                await self._commit_sealed()
            except StorageError as exc:
                on_failure(exc)
                return

    async def _commit_sealed(self) -> None:
        # A method of its own: the batch is let go once committed, not kept by the
        # committer's frame until the next one (it holds session records).
        batch, seq = self._sealed, self._sealed_seq
        self._sealed, self._sealed_seq = _Batch(), 0
        self._in_flight = batch
        try:
            results = await self._commit(batch, seq)
        except StorageError as exc:
            self._fail(batch, exc)
            raise
        for (_, written), ok in zip(batch.records, results, strict=True):
            written.written = ok
            written.done.set()
        if self._caching:
            for key, value in batch.values.items():
                self._remember(key, value)
        self._in_flight = _Batch()
        self.durability.advance(seq)
        self._committed.unpark_all()
        if self.on_durable is not None:
            self.on_durable(seq)

    async def _commit(self, batch: _Batch, seq: int) -> list[bool]:
        if not batch:
            await trio.lowlevel.checkpoint()
            return []
        commit = Commit(
            room=self.room,
            values=batch.values,
            alarms=batch.alarms,
            records=[write for write, _ in batch.records],
            frames=batch.frames,
            keep_frames=self.keep_frames,
            frames_expire_after=self.frames_expire_after,
            fence=self.fence,
        )
        try:
            route = self.route
            found = None
            if route is not None:
                found = await route.commit(commit, lambda: self.durability.release_forwards(seq))
            results = list(await self.storage.commit(commit) if found is None else found)
        except StorageError:
            raise
        except Exception as exc:  # a backend's own failure is a storage failure too
            raise StorageError(f"room {self.room!r}: commit failed: {exc!r}") from exc
        if len(results) != len(batch.records):
            raise StorageError(
                f"room {self.room!r}: the storage answered {len(results)} results "
                f"for {len(batch.records)} records"
            )
        return results

    def refused(self, error: OwnershipLostError) -> None:
        """A write of the room outside a commit (a claim, a deletion) met the fence.

        The room fails as if a commit had been refused: nothing more is written, and the
        room stops (its ``on_failure``).
        """
        if self.failed is not None:
            return
        self._fail(_Batch(), error)
        self._wake()
        if self._on_failure is not None:
            self._on_failure(error)

    def abandon(self, error: StorageError) -> None:
        """Write nothing more: what is not committed yet fails with ``error``.

        A commit in flight still lands (or fails) on its own; nothing after it is sent.
        """
        if self.failed is None:
            self._fail(_Batch(), error)
        self._wake()

    def _fail(self, batch: _Batch, error: StorageError) -> None:
        if isinstance(error, OwnershipLostError):
            # Its cause is told louder where it is known: a cluster's leases (this node
            # lost the room) or the registry (a storage shared without a cluster).
            _logger.info("room %r: stopping here: %s", self.room, error)
        else:
            _logger.error("room %r: a commit failed; restarting the room: %s", self.room, error)
        self.failed = error
        for pending in (batch, self._sealed, self._open):
            for _, written in pending.records:
                written.error = error
                written.done.set()
        self._cache.clear()
        self._committed.unpark_all()
