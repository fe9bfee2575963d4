"""The ``Storage`` port: durable session records and per-room key-value state.

The core only ever talks to this Protocol; `trio_rooms.storage` has the backends.
Values are bytes here: the core (de)serialises typed data with cattrs and orjson.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, final, runtime_checkable

import attrs
import cattrs.preconf.orjson

__all__ = [
    "Commit",
    "FencedStorage",
    "LoggedFrame",
    "RecordWrite",
    "ReplayCursor",
    "SessionRecord",
    "Storage",
    "StoredAlarm",
    "data_converter",
]

#: Session data and room values go through this converter (Python field names).
data_converter = cattrs.preconf.orjson.make_converter()


@final
@attrs.frozen
class ReplayCursor:
    """Where a session stands in its room's replay log: enough to replay what it missed.

    The session had been sent ``count`` frames (library frames aside) when the room's
    log ended at ``seq``.
    """

    count: int
    seq: int


@final
@attrs.frozen(kw_only=True)
class SessionRecord:
    """What is stored for one session: enough to resume it on any process."""

    room: str
    session_id: str
    #: The session's data, as JSON from `data_converter`.
    data: bytes
    #: The wire format the session speaks, kept across resumes.
    wire: str
    #: SHA-256 of the current resume token's secret; empty when not resumable.
    token_hash: bytes = b""
    #: Wall-clock (UNIX) time after which the token no longer resumes the session.
    expires_at: float = 0.0
    #: The session's place in its room's replay log; None: unknown (no replay for it).
    replay: ReplayCursor | None = None


@final
@attrs.frozen(kw_only=True)
class RecordWrite:
    """A session record to write as part of a `Commit`."""

    record: SessionRecord
    #: Write only while the stored record holds this token hash (or none is stored), as
    #: `Storage.replace_session` does; None writes it unconditionally (`save_session`).
    expected_token_hash: bytes | None = None


@final
@attrs.frozen(kw_only=True)
class StoredAlarm:
    """One durable alarm of a room, as stored."""

    room: str
    name: str
    #: Wall-clock (UNIX) time at which it falls due.
    at: float
    #: How many times its handler has failed since it was set (0: not run yet).
    attempt: int = 0


@final
@attrs.frozen
class LoggedFrame:
    """One entry of a room's replay log, as stored: its sequence number and its bytes.

    The bytes are the core's (frame, recipients, time), opaque to the storage.
    """

    seq: int
    data: bytes


@final
@attrs.frozen(kw_only=True)
class Commit:
    """Writes of one room that must land together: all of them, or none."""

    room: str
    #: Room values by key; None deletes the key.
    values: Mapping[str, bytes | None] = attrs.field(factory=dict[str, "bytes | None"])
    #: Alarms by name; None cancels the alarm.
    alarms: Mapping[str, StoredAlarm | None] = attrs.field(factory=dict[str, "StoredAlarm | None"])
    #: Session records, each written if its compare-and-set holds.
    records: Sequence[RecordWrite] = ()
    #: Frames appended to the room's replay log, in increasing ``seq``, after its last.
    frames: Sequence[LoggedFrame] = ()
    #: With ``frames``: the log keeps at least its newest ``keep_frames`` entries and may
    #: drop older ones (never the newest: it says where the log ends).
    keep_frames: int = 0
    #: With ``frames``: seconds after which no replay uses an entry (0: no such bound). A
    #: backend whose log would otherwise outlive its room (Redis keeps keys for good) lets
    #: the whole log expire this long after its last frame.
    frames_expire_after: float = 0.0
    #: The fencing token of the process that writes the room (0: not fenced): its
    #: cluster lease's, or the one `FencedStorage.raise_fence` gave it. A backend shared
    #: by several processes (`RedisStorage`, `SqliteStorage`) refuses, with
    #: `OwnershipLostError` and atomically with the rest, a commit whose token is below
    #: the room's fence, and raises the fence to the token otherwise, so a commit with no
    #: writes claims the room for its token. A backend of one process (`MemoryStorage`)
    #: ignores it.
    fence: int = attrs.field(default=0, validator=attrs.validators.ge(0))


class Storage(Protocol):
    """Durable storage for session records and room state.

    Every write returns only once it is durable (as the backend defines it). A
    failing operation raises `StorageError`. Implementations: `MemoryStorage`,
    `SqliteStorage`, `RedisStorage`.

    A resumable session's record is owned by whoever holds its current token: the
    core writes it only with `claim_session` and `replace_session`, two atomic
    compare-and-set operations on ``token_hash``, so that of connections racing with
    one token exactly one resumes, and a session resumed elsewhere (another
    connection, another node) cannot overwrite what its new owner stored.
    """

    async def open(self) -> None:
        """Prepare for use (create the schema); called once by `open_rooms`."""
        ...

    async def aclose(self) -> None:
        """Flush and release everything; called once when `open_rooms` exits."""
        ...

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        """The record of ``session_id`` in ``room``, or None."""
        ...

    async def save_session(self, record: SessionRecord) -> None:
        """Insert or replace the record of ``record.session_id``."""
        ...

    async def claim_session(
        self,
        room: str,
        session_id: str,
        *,
        token_hash: bytes,
        new_token_hash: bytes,
        expires_at: float,
        fence: int = 0,
    ) -> SessionRecord | None:
        """Spend a token: atomically move the record from ``token_hash`` to ``new_token_hash``.

        If the stored record's ``token_hash`` is ``token_hash``, set it to
        ``new_token_hash`` and its ``expires_at`` to ``expires_at``, keep its ``data``
        and ``wire`` as they are at that moment, and return the record as it now is.
        Return None, changing nothing, if there is no record or it holds another token
        hash (someone else spent the token first). No other write may come between the
        comparison and the change. Idempotent: a record that already holds
        ``new_token_hash`` is claimed (a retried claim is not a lost one).

        ``fence`` is the fencing token of the room's writer, as in `Commit.fence`: a
        backend shared by several processes refuses a claim below the room's fence
        with `OwnershipLostError`, changing nothing, in the same atomic step (a deposed
        writer must not spend a token); a backend of one process ignores it.
        """
        ...

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        """Replace the record of ``record.session_id`` if it still holds ``expected_token_hash``.

        Writes ``record`` and returns True if the stored record's ``token_hash`` is
        ``expected_token_hash``, or if no record is stored (it expired: nobody can
        have resumed it). Returns False, writing nothing, if the stored record holds
        another token hash: the session was resumed by someone else. No other write
        may come between the comparison and the write.
        """
        ...

    async def delete_session(self, room: str, session_id: str, *, fence: int = 0) -> None:
        """Forget a session (nothing happens if it is unknown).

        ``fence``: as for `claim_session`, refused below the room's fence.
        """
        ...

    async def get(self, room: str, key: str) -> bytes | None:
        """The value stored under ``key`` for ``room``, or None."""
        ...

    async def put(self, room: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` for ``room``."""
        ...

    async def delete(self, room: str, key: str) -> None:
        """Remove ``key`` of ``room`` (nothing happens if it is absent)."""
        ...

    async def commit(self, commit: Commit) -> Sequence[bool]:
        """Write everything in ``commit`` atomically, and durably on return.

        Either every value, alarm and record whose compare-and-set holds is written, in
        one transaction, or (raising `StorageError`) nothing is: a crash or a failure
        part-way never leaves half a commit behind. A record whose compare-and-set fails
        is not written and does not fail the rest. Returns, for each of
        ``commit.records`` in order, whether it was written.

        A backend shared by several processes checks ``commit.fence`` in the same
        transaction: below the room's fence, nothing is written and it raises
        `OwnershipLostError` (a `StorageError`); otherwise the fence is raised to it.
        """
        ...

    async def load_alarms(self, room: str) -> Sequence[StoredAlarm]:
        """Every alarm of ``room``, earliest first."""
        ...

    async def load_frames(self, room: str, *, after: int = 0) -> Sequence[LoggedFrame]:
        """The frames of ``room``'s replay log with a ``seq`` above ``after``, oldest first."""
        ...

    async def last_frame_seq(self, room: str) -> int:
        """The ``seq`` of the newest frame of ``room``'s replay log; 0 if it has none."""
        ...

    async def next_alarms(self, limit: int) -> Sequence[StoredAlarm]:
        """The ``limit`` earliest alarms of every room, earliest first."""
        ...

    async def replace_alarm(
        self, alarm: StoredAlarm, new: StoredAlarm | None, *, fence: int = 0
    ) -> bool:
        """Replace ``alarm`` with ``new`` (None deletes it) if it is still stored as it was.

        Returns False, changing nothing, if the stored alarm of that room and name has
        another ``at`` or ``attempt`` (it was set again or cancelled meanwhile), so an
        alarm set again while it fired is not lost. No other write may come between the
        comparison and the change. ``fence``: as for `claim_session`, refused below the
        room's fence.
        """
        ...


@runtime_checkable
class FencedStorage(Protocol):
    """What a `Storage` that several processes can share adds: a writer token per room.

    Optional: the registry looks for it at run time (``isinstance``), and a `Storage`
    without it (`MemoryStorage`, most user-written ones) works as before, unfenced.
    With it, a room of a server with no ``cluster=`` and no backplane takes a token
    before ``on_start`` (`raise_fence`) and carries it in every write (`Commit.fence`,
    and the ``fence`` of `Storage.claim_session`, `Storage.delete_session` and
    `Storage.replace_alarm`); the backend refuses, with `OwnershipLostError` and
    writing nothing, every write whose token is below the room's fence. So of several
    processes writing one room of one storage (two workers on one SQLite file, a new
    server started before the old one drained), only the one that started the room
    last writes it: the others' copies of the room stop at their next write instead
    of mixing their replay logs and records with its.

    `SqliteStorage` and `RedisStorage` implement it; a backend does so by writing a
    fence per room that `raise_fence` raises and every fenced write checks, in the
    same atomic step as the write.
    """

    async def raise_fence(self, room: str) -> int:
        """Raise ``room``'s fence by one, atomically and durably, and return it.

        From its return on, a write of ``room`` whose fencing token is below the
        returned one is refused. The first call for a room returns 1 (or one more than
        the fence a cluster's lease or a commit left).
        """
        ...
