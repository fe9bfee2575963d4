"""``RedisStorage``: session records and room state in Redis, shared by every node.

Needs the optional dependency coredis (``pip install trio_rooms[redis]``); ``import
trio_rooms`` never loads this module. Every key starts with ``prefix``, ``"trio_rooms:"``
by default (the layout: `trio_rooms.storage._redis_keys`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar, final
from urllib.parse import urlsplit

import trio

try:
    from coredis.tokens import PureToken
except ImportError as _missing:
    raise ImportError(
        "trio_rooms.storage.redis needs coredis: pip install trio_rooms[redis]", name=_missing.name
    ) from _missing

from .._core.memory import check_alarm_replacement, check_commit, check_limit
from .._core.storage import Commit, LoggedFrame, SessionRecord, StoredAlarm
from .._errors import OwnershipLostError, StorageError
from ._redis_client import Client, ClientRunner, make_client
from ._redis_commit import COMMIT, commit_arguments, commit_result
from ._redis_commit_line import CommitLine
from ._redis_encoding import (
    decode_alarm,
    decode_frame,
    decode_record,
    encode_alarm,
    encode_record,
    expiry_ms,
    pxat,
    record_tail,
    score,
)
from ._redis_keys import RedisKeys, encode_name, queue_entry
from ._redis_replies import Refused, as_list, bytes_or_none, done, fenced, is_one
from ._redis_scripts import CLAIM, DELETE_SESSION, NEXT_ALARMS, REPLACE, REPLACE_ALARM

__all__ = ["RedisStorage"]

T = TypeVar("T")

_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})


@final
class RedisStorage:
    """Session records and room state in the Redis server at ``url``.

    ::

        from trio_rooms.storage.redis import RedisStorage

        async with trio_rooms.open_rooms(ChatRoom, storage=RedisStorage("redis://redis:6379/0")):
            ...

    Several processes (nodes) may share one Redis: a session saved by one resumes on any,
    and a token is spent once across all of them (`claim_session` and `replace_session`
    are compare-and-sets inside Redis). A session record expires in Redis itself at its
    ``expires_at`` (``SET ... PXAT``, Redis 6.2 or later), so records of sessions that
    never come back vanish on their own; a record saved with an ``expires_at`` in the past
    removes the session. The expiry uses Redis's clock, the token check the node's: keep
    clocks in sync (NTP). Room values never expire.

    Without ``cluster=`` and without a backplane, each room is written by one process:
    the one that started it last takes a fencing token (`raise_fence`), and the writes
    of an older copy of the room elsewhere are refused (`FencedStorage`).

    Durability: every write (so ``update()`` and ``room.storage.put``) returns once Redis
    has acknowledged it, which Redis does when the write is in its memory. Whether it
    survives a crash of Redis depends on the server's persistence: with ``appendonly yes``
    and ``appendfsync always`` it does; with the usual ``appendfsync everysec`` about the
    last second can be lost; without the AOF, everything since the last RDB snapshot.
    Replication is asynchronous, so a failover can lose acknowledged writes too.

    Failures: every operation raises `StorageError` when Redis refuses, is unreachable or
    does not answer within ``timeout`` seconds (the cause chained: coredis's error, or
    `trio.TooSlowError`); it never waits longer. After a timeout the operation may or may
    not have been applied, and the connections are dropped, so that one hung connection
    cannot fail the next operations. Once Redis is back, operations work again: the
    connections are made anew as needed, the storage need not be reopened.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS, or
            ``unix:///path/to/socket?db=0``; coredis's query options (``max_connections``,
            ``client_name``, ...) apply.
        prefix: Put before every key, to share one Redis database between applications.
        timeout: Seconds each operation may take, from its call to its answer.
    """

    def __init__(self, url: str, *, prefix: str = "trio_rooms:", timeout: float = 5.0) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in _SCHEMES:
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        self._url = url
        self._keys = RedisKeys(prefix.encode())
        self._timeout = timeout
        self._runner: ClientRunner | None = None
        self._commits: CommitLine | None = None

    @property
    def url(self) -> str:
        """The Redis server's URL."""
        return self._url

    @property
    def prefix(self) -> str:
        """What every key starts with."""
        return self._keys.prefix.decode()

    @property
    def timeout(self) -> float:
        """Seconds each operation may take before it raises `StorageError`."""
        return self._timeout

    async def open(self) -> None:
        """Start the client and check that Redis answers ``PING``.

        Raises:
            StorageError: Redis cannot be reached, refuses the connection, or does not
                answer within ``timeout``.
        """
        if self._runner is not None:
            raise RuntimeError("RedisStorage is already open")
        runner = ClientRunner(make_client(self._url, self._timeout), self._timeout)
        # A system task, not a task group entered here and exited in aclose: open_rooms
        # closes the storage from inside a shielded cancel scope, which a task group
        # opened before that scope cannot be exited from.
        trio.lowlevel.spawn_system_task(runner.run, name="trio_rooms RedisStorage client")
        self._runner = runner
        self._commits = CommitLine(self._url, self._timeout, COMMIT.script)
        try:
            await runner.entered.wait()
            await self._call("answer PING", lambda redis: redis.ping())
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close the connections; nothing is pending, every write returned was acknowledged."""
        runner, self._runner = self._runner, None
        commits, self._commits = self._commits, None
        if commits is not None:
            await commits.aclose()
        if runner is not None:
            await runner.stop()

    # ------------------------------------------------------------------ sessions

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        """The record of ``session_id`` in ``room``, or None (also once it expired)."""
        key = self._keys.session(room, session_id)
        raw = await self._call("load a session", lambda redis: redis.get(key))
        if raw is None:
            return None
        return decode_record(room, session_id, raw)

    async def save_session(self, record: SessionRecord) -> None:
        """Insert or replace ``record``, expiring at its ``expires_at``; acknowledged on return."""
        key = self._keys.session(record.room, record.session_id)
        expires_ms = expiry_ms(record.expires_at)
        if expires_ms <= 0:  # Redis refuses PXAT 0; the record would be expired anyway
            await self._call("delete an expired session", lambda redis: redis.delete([key]))
            return
        value = encode_record(record)
        await self._call("save a session", lambda redis: redis.set(key, value, pxat=expires_ms))

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
        """Move the record from ``token_hash`` to ``new_token_hash``; None if it holds another.

        One script: the fence check, the comparison and the write happen inside Redis,
        in one step.

        Raises:
            OwnershipLostError: ``fence`` is below the room's fence; nothing changed.
        """
        key = self._keys.session(room, session_id)
        tail = record_tail(new_token_hash, expires_at)
        args = (token_hash, new_token_hash, tail, pxat(expires_at), fence)
        keys = (key, self._keys.fence(room))
        raw = await self._call(
            "claim a session",
            lambda redis: CLAIM(keys=keys, args=args, client=redis, callback=fenced(bytes_or_none)),
        )
        if isinstance(raw, Refused):
            raise OwnershipLostError(room, fence, raw.fence)
        return None if raw is None else decode_record(room, session_id, raw)

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        """Replace ``record`` if it holds ``expected_token_hash`` (or is gone); else False.

        One script, like `claim_session`; a record saved with an ``expires_at`` in the
        past removes the session, as with `save_session`.
        """
        key = self._keys.session(record.room, record.session_id)
        args = (expected_token_hash, encode_record(record), pxat(record.expires_at))
        return await self._call(
            "replace a session",
            lambda redis: REPLACE(keys=(key,), args=args, client=redis, callback=is_one),
        )

    async def delete_session(self, room: str, session_id: str, *, fence: int = 0) -> None:
        """Forget a session (nothing happens if it is unknown); acknowledged on return.

        Raises:
            OwnershipLostError: ``fence`` is below the room's fence; nothing changed.
        """
        keys = (self._keys.session(room, session_id), self._keys.fence(room))
        refused = await self._call(
            "delete a session",
            lambda redis: DELETE_SESSION(
                keys=keys, args=(fence,), client=redis, callback=fenced(done)
            ),
        )
        if isinstance(refused, Refused):
            raise OwnershipLostError(room, fence, refused.fence)

    # ---------------------------------------------------------------- room state

    async def get(self, room: str, key: str) -> bytes | None:
        """The value under ``key`` for ``room``, or None."""
        redis_key = self._keys.state(room, key)
        return await self._call("get a room value", lambda redis: redis.get(redis_key))

    async def put(self, room: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` for ``room``; acknowledged on return."""
        redis_key = self._keys.state(room, key)
        await self._call("put a room value", lambda redis: redis.set(redis_key, value))

    async def delete(self, room: str, key: str) -> None:
        """Remove ``key`` of ``room`` (nothing happens if it is absent); acknowledged on return."""
        redis_key = self._keys.state(room, key)
        await self._call("delete a room value", lambda redis: redis.delete([redis_key]))

    # ------------------------------------------------------------ commits, alarms

    async def commit(self, commit: Commit) -> Sequence[bool]:
        """Write ``commit`` with one script: Redis runs it whole, with nothing in between.

        The script makes every check that can fail before its first write, so a commit
        that fails (a stored record it cannot read, a key of another type) writes nothing.
        A fenced commit (``commit.fence`` above 0) is compared with the room's fence in
        the same script: below it, nothing is written; otherwise the fence is raised to it.

        Raises:
            OwnershipLostError: ``commit.fence`` is below the room's fence: another node
                took the room since.
            StorageError: Redis refused the commit or could not be reached in time.
            ValueError: an alarm is not one of this room's, by that name, at a finite
                time; or a record's ``expires_at`` is not finite.
        """
        check_commit(commit)
        commits = self._commits
        if commits is None:
            raise StorageError("Redis storage is not open")
        count, arguments = commit_arguments(self._keys, commit)
        # Not through coredis: the hot path of a relayed session's every reply.
        return commit_result(commit, await commits.call(count, arguments))

    async def load_frames(self, room: str, *, after: int = 0) -> Sequence[LoggedFrame]:
        """The frames of ``room``'s replay log after ``after``, oldest first."""
        key = self._keys.log(room)
        found = await self._call(
            "load the replay log",
            lambda redis: redis.zrange(key, after + 1, "+inf", sortby=PureToken.BYSCORE),
        )
        return [decode_frame(room, member) for member in found]

    async def last_frame_seq(self, room: str) -> int:
        """The newest frame's ``seq`` in ``room``'s replay log; 0 if it has none."""
        key = self._keys.log(room)
        found = await self._call(
            "read the end of the replay log", lambda redis: redis.zrange(key, -1, -1)
        )
        return decode_frame(room, found[0]).seq if found else 0

    async def load_alarms(self, room: str) -> Sequence[StoredAlarm]:
        """Every alarm of ``room``, earliest first."""
        key = self._keys.alarms(room)
        stored = await self._call("load the alarms", lambda redis: redis.hgetall(key))
        alarms = [decode_alarm(room, name, raw) for name, raw in stored.items()]
        return sorted(alarms, key=lambda alarm: (alarm.at, alarm.name))

    async def next_alarms(self, limit: int) -> Sequence[StoredAlarm]:
        """The ``limit`` earliest alarms of every room, earliest first (one script)."""
        check_limit(limit)
        keys, args = [self._keys.alarm_queue], [limit, self._keys.alarms_prefix]
        found = await self._call(
            "read the next alarms",
            lambda redis: NEXT_ALARMS(keys=keys, args=args, client=redis, callback=as_list),
        )
        alarms: list[StoredAlarm] = []
        for entry, raw in zip(found[::2], found[1::2], strict=True):
            assert isinstance(entry, bytes)
            room, _, name = entry.partition(b" ")
            if not isinstance(raw, bytes):
                raise StorageError(f"alarm queue entry {entry!r} has no alarm")
            alarms.append(decode_alarm(room.decode("ascii"), name, raw))
        return alarms

    async def replace_alarm(
        self, alarm: StoredAlarm, new: StoredAlarm | None, *, fence: int = 0
    ) -> bool:
        """Replace ``alarm`` with ``new`` (None deletes it) if it is stored as it was; else False.

        One script, like `replace_session`, which checks ``fence`` first.

        Raises:
            OwnershipLostError: ``fence`` is below the room's fence; nothing changed.
        """
        check_alarm_replacement(alarm, new)
        room = alarm.room
        keys = [self._keys.alarms(room), self._keys.alarm_queue, self._keys.fence(room)]
        args = [
            encode_name(alarm.name),
            queue_entry(room, alarm.name),
            encode_alarm(alarm),
            *((b"", b"") if new is None else (encode_alarm(new), score(new))),
            fence,
        ]
        replaced = await self._call(
            "replace an alarm",
            lambda redis: REPLACE_ALARM(
                keys=keys, args=args, client=redis, callback=fenced(is_one)
            ),
        )
        if isinstance(replaced, Refused):
            raise OwnershipLostError(room, fence, replaced.fence)
        return replaced

    async def raise_fence(self, room: str) -> int:
        """Raise ``room``'s fence by one and return it (`FencedStorage`): ``INCR``.

        On the key a cluster's leases count their tokens in (``{prefix}fence:{room}``),
        so tokens stay comparable if the deployment later runs with ``cluster=`` on
        the same Redis and prefix.
        """
        key = self._keys.fence(room)
        return await self._call("raise a room's fence", lambda redis: redis.incr(key))

    # ----------------------------------------------------------------- internals

    async def _call(self, action: str, command: Callable[[Client], Awaitable[T]]) -> T:
        """Run one command, within ``timeout``, translating every failure to StorageError."""
        runner = self._runner
        if runner is None:
            raise StorageError("Redis storage is not open")
        return await runner.call(action, command)
