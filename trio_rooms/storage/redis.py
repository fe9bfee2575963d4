"""``RedisStorage``: session records and room state in Redis, shared by every node.

Needs the optional dependency coredis (``pip install trio_rooms[redis]``); ``import
trio_rooms`` never loads this module. Keys, with ``prefix`` ``"trio_rooms:"`` by default::

    {prefix}session:{room}:{session_id}   one session record (msgpack), expiring at its expires_at
    {prefix}state:{room}:{key}            one room value (the bytes as given), never expiring
    {prefix}alarms:{room}                 a hash of the room's alarms: name -> msgpack [at, attempt]
    {prefix}alarm-queue                   every room's alarms, a sorted set: "{room} {name}" by at
    {prefix}replay:{room}                 the room's replay log, a sorted set of frames by seq
    {prefix}fence:{room}                  the room's fence: the newest owner's fencing token

Room names cannot contain ``:`` (`trio_rooms.ROOM_NAME_PATTERN`) and the kinds are fixed,
so no session id, user key or alarm name, whatever characters it holds, can reach another
kind's or another room's key. Nor a space: a queue entry splits back at its first one, and
as a space sorts before every character of a room name, alarms due at the same time come
in the order of their room, then name, as on every backend.

The fence key is the one the leases of single ownership count their tokens in (with the
same prefix), so a new owner's acquisition already raises it; a commit raises it too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar, cast, final
from urllib.parse import urlsplit

import attrs
import msgpack
import trio

try:
    import coredis
    from coredis.commands import Script
    from coredis.exceptions import ConnectionError as RedisConnectionError
    from coredis.exceptions import RedisError
    from coredis.retry import ConstantRetryPolicy
    from coredis.tokens import PureToken
except ImportError as _missing:
    raise ImportError(
        "trio_rooms.storage.redis needs coredis: pip install trio_rooms[redis]", name=_missing.name
    ) from _missing

from .._core.config import ROOM_NAME_PATTERN
from .._core.memory import check_alarm_replacement, check_commit, check_limit
from .._core.storage import Commit, LoggedFrame, ReplayCursor, SessionRecord, StoredAlarm
from .._errors import OwnershipLostError, RoomNameError, StorageError
from .._redis import guarded

__all__ = ["RedisStorage"]

T = TypeVar("T")

_logger = logging.getLogger("trio_rooms")

_SESSION: Final = b"session:"
_STATE: Final = b"state:"
_ALARMS: Final = b"alarms:"
_ALARM_QUEUE: Final = b"alarm-queue"
_LOG: Final = b"replay:"
_FENCE: Final = b"fence:"
#: First element of a stored session record: 2 added the replay cursor (1 is still read).
_RECORD_VERSION: Final = 2
_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})
# The compare-and-sets read the token hash inside Redis, from the record as
# `_encode_record` lays it out: msgpack [version, data (bin), wire (str), replay cursor
# (bin), token hash (bin), expires_at (float 64)] (version 1 had no cursor). (Redis's
# cmsgpack cannot decode bin.) The hash and the expiry come last, so a claim keeps the
# bytes before them and appends the new ones.
_FIND_TOKEN_HASH: Final = f"""
local function token_hash_of(record)
    local head, version = string.byte(record, 1, 2)
    local hash_field
    if head == 0x95 and version == 1 then
        hash_field = 3
    elseif head == 0x96 and version == {_RECORD_VERSION} then
        hash_field = 4
    else
        error('unexpected session record')
    end
    local at = 3
    for field = 1, hash_field do
        local tag = string.byte(record, at) or 0
        local size, header
        if tag >= 0xa0 and tag <= 0xbf then
            size, header = tag - 0xa0, 1
        elseif tag == 0xc4 or tag == 0xd9 then
            size, header = string.byte(record, at + 1), 2
        elseif tag == 0xc5 or tag == 0xda then
            local b1, b2 = string.byte(record, at + 1, at + 2)
            size, header = b1 * 256 + b2, 3
        elseif tag == 0xc6 or tag == 0xdb then
            local b1, b2, b3, b4 = string.byte(record, at + 1, at + 4)
            size, header = ((b1 * 256 + b2) * 256 + b3) * 256 + b4, 5
        else
            error('unexpected session record')
        end
        if field == hash_field then
            return string.sub(record, at + header, at + header + size - 1), at
        end
        at = at + header + size
    end
end
"""

# KEYS[1]: the record; ARGV: the expected token hash, the new record, its PXAT.
_REPLACE: Final = Script[bytes](
    script=_FIND_TOKEN_HASH
    + """
local stored = redis.call('GET', KEYS[1])
if stored and token_hash_of(stored) ~= ARGV[1] then
    return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
"""
)

# The room's fence, as a one-item array, when the fencing token ARGV[i] (not '0') is
# below it: the script then refuses, writing nothing. Called before any write.
_BELOW_FENCE: Final = """
local function below_fence(key, fence)
    if fence == '0' then
        return nil
    end
    local stored = redis.call('GET', key)
    if stored and tonumber(fence) < tonumber(stored) then
        return {tonumber(stored)}
    end
    return nil
end
"""

# KEYS: the record, the room's fence; ARGV: the token hash to spend, the new one, the new
# record's tail (the new hash and expiry, packed), its PXAT, the fencing token. Returns
# the claimed record, nil, or {the fence} if the token is below it.
_CLAIM: Final = Script[bytes](
    script=_FIND_TOKEN_HASH
    + _BELOW_FENCE
    + """
local refused = below_fence(KEYS[2], ARGV[5])
if refused then
    return refused
end
local stored = redis.call('GET', KEYS[1])
if not stored then
    return false
end
local token_hash, at = token_hash_of(stored)
if token_hash ~= ARGV[1] and token_hash ~= ARGV[2] then
    return false
end
local claimed = string.sub(stored, 1, at - 1) .. ARGV[3]
redis.call('SET', KEYS[1], claimed, 'PXAT', ARGV[4])
return claimed
"""
)

# A script is not rolled back when it fails part-way, so the writing scripts below run
# every command that can fail (a read of a record token_hash_of cannot parse, a key of
# another type) before their first write: an error leaves nothing written.
_REQUIRE_TYPE: Final = """
local function require_type(key, kind)
    local found = redis.call('TYPE', key)['ok']
    if found ~= 'none' and found ~= kind then
        error('expected a ' .. kind .. ' at ' .. key .. ', found a ' .. found)
    end
end
"""

# KEYS: the room's alarms, the alarm queue, one key per value, one per record, [the
# room's log], the room's fence.
# ARGV: how many values, alarms and records; then per value 'p' and the bytes, or 'd' and
# ''; per alarm its name, its queue entry, its encoding and its at, or '' and '' to
# cancel it; per record '1' and the expected token hash, or '0' and '' (unconditional),
# the record and its PXAT; then how many logged frames, how many the log keeps, after how
# many ms without a frame the log expires (0: never), and per frame its seq (the score)
# and its member; last the commit's fencing token (0: unfenced). With frames, the room's
# log is the key before the fence.
# Returns 1 or 0 per record: written or not; or, writing nothing, 'fenced <the fence>'
# when the token is below the room's fence.
_COMMIT: Final = Script[bytes](
    script=_FIND_TOKEN_HASH
    + _REQUIRE_TYPE
    + """
local nvalues, nalarms, nrecords = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local first_alarm = 4 + 2 * nvalues
local first_record = first_alarm + 4 * nalarms
local first_frame = first_record + 4 * nrecords
local nframes = tonumber(ARGV[first_frame])
if nalarms > 0 then
    require_type(KEYS[1], 'hash')
    require_type(KEYS[2], 'zset')
end
if nframes > 0 then
    require_type(KEYS[3 + nvalues + nrecords], 'zset')
end
local fence_key, fence = KEYS[#KEYS], ARGV[#ARGV]
if fence ~= '0' then
    local stored = redis.call('GET', fence_key)
    if stored and tonumber(fence) < tonumber(stored) then
        return 'fenced ' .. stored
    end
end
-- The compare-and-sets, in order: a record written earlier in this commit is what a
-- later one of the same session compares with.
local written, pending = {}, {}
for i = 0, nrecords - 1 do
    local arg, key = first_record + 4 * i, KEYS[3 + nvalues + i]
    local ok = ARGV[arg] == '0'
    if not ok then
        local held = pending[key]
        if held == nil then
            local stored = redis.call('GET', key)
            held = stored and token_hash_of(stored)
        end
        ok = not held or held == ARGV[arg + 1]
    end
    if ok then
        pending[key] = token_hash_of(ARGV[arg + 2])
        written[i + 1] = 1
    else
        written[i + 1] = 0
    end
end
if fence ~= '0' then
    redis.call('SET', fence_key, fence)
end
for i = 0, nvalues - 1 do
    local arg, key = 4 + 2 * i, KEYS[3 + i]
    if ARGV[arg] == 'd' then
        redis.call('DEL', key)
    else
        redis.call('SET', key, ARGV[arg + 1])
    end
end
for i = 0, nalarms - 1 do
    local arg = first_alarm + 4 * i
    if ARGV[arg + 2] == '' then
        redis.call('HDEL', KEYS[1], ARGV[arg])
        redis.call('ZREM', KEYS[2], ARGV[arg + 1])
    else
        redis.call('HSET', KEYS[1], ARGV[arg], ARGV[arg + 2])
        redis.call('ZADD', KEYS[2], ARGV[arg + 3], ARGV[arg + 1])
    end
end
for i = 0, nrecords - 1 do
    if written[i + 1] == 1 then
        local arg = first_record + 4 * i
        redis.call('SET', KEYS[3 + nvalues + i], ARGV[arg + 2], 'PXAT', ARGV[arg + 3])
    end
end
if nframes > 0 then
    local log = KEYS[3 + nvalues + nrecords]
    for i = 0, nframes - 1 do
        redis.call('ZADD', log, ARGV[first_frame + 3 + 2 * i], ARGV[first_frame + 4 + 2 * i])
    end
    redis.call('ZREMRANGEBYRANK', log, 0, -1 - tonumber(ARGV[first_frame + 1]))
    local expire_ms = tonumber(ARGV[first_frame + 2])
    if expire_ms > 0 then
        redis.call('PEXPIRE', log, expire_ms)  -- a gone room's log goes too
    end
end
return written
"""
)

# KEYS: the record, the room's fence; ARGV: the fencing token. Returns 1, or {the fence}.
_DELETE_SESSION: Final = Script[bytes](
    script=_BELOW_FENCE
    + """
local refused = below_fence(KEYS[2], ARGV[1])
if refused then
    return refused
end
redis.call('DEL', KEYS[1])
return 1
"""
)

# KEYS: the room's alarms, the alarm queue, the room's fence. ARGV: the alarm's name,
# its queue entry, its encoding as stored, the new encoding and at ('' and '' delete
# it), the fencing token. Returns 1 or 0, or {the fence} if the token is below it.
_REPLACE_ALARM: Final = Script[bytes](
    script=_REQUIRE_TYPE
    + _BELOW_FENCE
    + """
require_type(KEYS[2], 'zset')
local refused = below_fence(KEYS[3], ARGV[6])
if refused then
    return refused
end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[3] then
    return 0
end
if ARGV[4] == '' then
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[2])
else
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
    redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
end
return 1
"""
)

# KEYS: the alarm queue. ARGV: how many alarms, the prefix of the rooms' alarm hashes.
# Returns each queue entry followed by its encoding, earliest first, read in one step.
# The hashes' keys are made here, not passed: Redis Cluster is not supported anyway.
_NEXT_ALARMS: Final = Script[bytes](
    script="""
local found, limit = {}, tonumber(ARGV[1])
if limit == 0 then
    return found
end
for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, limit - 1)) do
    local space = string.find(entry, ' ', 1, true)
    local room, name = string.sub(entry, 1, space - 1), string.sub(entry, space + 1)
    found[#found + 1] = entry
    found[#found + 1] = redis.call('HGET', ARGV[2] .. room, name)
end
return found
"""
)

_Client = coredis.Redis[bytes]


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
        self._prefix = prefix.encode()
        self._timeout = timeout
        self._runner: _ClientRunner | None = None

    @property
    def url(self) -> str:
        """The Redis server's URL."""
        return self._url

    @property
    def prefix(self) -> str:
        """What every key starts with."""
        return self._prefix.decode()

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
        runner = _ClientRunner(self._make_client())
        # A system task, not a task group entered here and exited in aclose: open_rooms
        # closes the storage from inside a shielded cancel scope, which a task group
        # opened before that scope cannot be exited from.
        trio.lowlevel.spawn_system_task(runner.run, name="trio_rooms RedisStorage client")
        self._runner = runner
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
        if runner is not None:
            await runner.stop()

    # ------------------------------------------------------------------ sessions

    async def load_session(self, room: str, session_id: str) -> SessionRecord | None:
        """The record of ``session_id`` in ``room``, or None (also once it expired)."""
        key = self._key(_SESSION, room, session_id)
        raw = await self._call("load a session", lambda redis: redis.get(key))
        if raw is None:
            return None
        return _decode_record(room, session_id, raw)

    async def save_session(self, record: SessionRecord) -> None:
        """Insert or replace ``record``, expiring at its ``expires_at``; acknowledged on return."""
        key = self._key(_SESSION, record.room, record.session_id)
        expires_ms = _expiry_ms(record.expires_at)
        if expires_ms <= 0:  # Redis refuses PXAT 0; the record would be expired anyway
            await self._call("delete an expired session", lambda redis: redis.delete([key]))
            return
        value = _encode_record(record)
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
        key = self._key(_SESSION, room, session_id)
        tail = msgpack.packb(new_token_hash) + msgpack.packb(float(expires_at))
        args = (token_hash, new_token_hash, tail, _pxat(expires_at), fence)
        keys = (key, self._fence_key(room))
        raw = await self._call(
            "claim a session",
            lambda redis: _CLAIM(
                keys=keys, args=args, client=redis, callback=_fenced(_bytes_or_none)
            ),
        )
        if isinstance(raw, _Refused):
            raise OwnershipLostError(room, fence, raw.fence)
        return None if raw is None else _decode_record(room, session_id, raw)

    async def replace_session(self, record: SessionRecord, *, expected_token_hash: bytes) -> bool:
        """Replace ``record`` if it holds ``expected_token_hash`` (or is gone); else False.

        One script, like `claim_session`; a record saved with an ``expires_at`` in the
        past removes the session, as with `save_session`.
        """
        key = self._key(_SESSION, record.room, record.session_id)
        args = (expected_token_hash, _encode_record(record), _pxat(record.expires_at))
        return await self._call(
            "replace a session",
            lambda redis: _REPLACE(keys=(key,), args=args, client=redis, callback=_is_one),
        )

    async def delete_session(self, room: str, session_id: str, *, fence: int = 0) -> None:
        """Forget a session (nothing happens if it is unknown); acknowledged on return.

        Raises:
            OwnershipLostError: ``fence`` is below the room's fence; nothing changed.
        """
        keys = (self._key(_SESSION, room, session_id), self._fence_key(room))
        refused = await self._call(
            "delete a session",
            lambda redis: _DELETE_SESSION(
                keys=keys, args=(fence,), client=redis, callback=_fenced(_done)
            ),
        )
        if isinstance(refused, _Refused):
            raise OwnershipLostError(room, fence, refused.fence)

    # ---------------------------------------------------------------- room state

    async def get(self, room: str, key: str) -> bytes | None:
        """The value under ``key`` for ``room``, or None."""
        redis_key = self._key(_STATE, room, key)
        return await self._call("get a room value", lambda redis: redis.get(redis_key))

    async def put(self, room: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` for ``room``; acknowledged on return."""
        redis_key = self._key(_STATE, room, key)
        await self._call("put a room value", lambda redis: redis.set(redis_key, value))

    async def delete(self, room: str, key: str) -> None:
        """Remove ``key`` of ``room`` (nothing happens if it is absent); acknowledged on return."""
        redis_key = self._key(_STATE, room, key)
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
        room = commit.room
        keys = [self._alarms_key(room), self._prefix + _ALARM_QUEUE]
        args: list[bytes | int | str] = [
            len(commit.values),
            len(commit.alarms),
            len(commit.records),
        ]
        for key, value in commit.values.items():
            keys.append(self._key(_STATE, room, key))
            args += (b"d", b"") if value is None else (b"p", value)
        for name, alarm in commit.alarms.items():
            args += (_encode_name(name), _queue_entry(room, name))
            args += (b"", b"") if alarm is None else (_encode_alarm(alarm), _score(alarm))
        for write in commit.records:
            record, expected = write.record, write.expected_token_hash
            keys.append(self._key(_SESSION, record.room, record.session_id))
            args += (b"0", b"") if expected is None else (b"1", expected)
            args += (_encode_record(record), _pxat(record.expires_at))
        expire_ms = math.ceil(commit.frames_expire_after * 1000)
        args += (len(commit.frames), max(commit.keep_frames, 1), expire_ms)
        if commit.frames:
            keys.append(self._log_key(room))
            for frame in commit.frames:
                args += (frame.seq, _encode_frame(frame))
        keys.append(self._fence_key(room))
        args.append(commit.fence)
        reply = await self._call(
            "commit",
            lambda redis: _COMMIT(keys=keys, args=args, client=redis, callback=_commit_reply),
        )
        if isinstance(reply, int):
            raise OwnershipLostError(room, commit.fence, reply)
        return reply

    async def load_frames(self, room: str, *, after: int = 0) -> Sequence[LoggedFrame]:
        """The frames of ``room``'s replay log after ``after``, oldest first."""
        key = self._log_key(room)
        found = await self._call(
            "load the replay log",
            lambda redis: redis.zrange(key, after + 1, "+inf", sortby=PureToken.BYSCORE),
        )
        return [_decode_frame(room, member) for member in found]

    async def last_frame_seq(self, room: str) -> int:
        """The newest frame's ``seq`` in ``room``'s replay log; 0 if it has none."""
        key = self._log_key(room)
        found = await self._call(
            "read the end of the replay log", lambda redis: redis.zrange(key, -1, -1)
        )
        return _decode_frame(room, found[0]).seq if found else 0

    async def load_alarms(self, room: str) -> Sequence[StoredAlarm]:
        """Every alarm of ``room``, earliest first."""
        key = self._alarms_key(room)
        stored = await self._call("load the alarms", lambda redis: redis.hgetall(key))
        alarms = [_decode_alarm(room, name, raw) for name, raw in stored.items()]
        return sorted(alarms, key=lambda alarm: (alarm.at, alarm.name))

    async def next_alarms(self, limit: int) -> Sequence[StoredAlarm]:
        """The ``limit`` earliest alarms of every room, earliest first (one script)."""
        check_limit(limit)
        keys, args = [self._prefix + _ALARM_QUEUE], [limit, self._prefix + _ALARMS]
        found = await self._call(
            "read the next alarms",
            lambda redis: _NEXT_ALARMS(keys=keys, args=args, client=redis, callback=_list),
        )
        alarms: list[StoredAlarm] = []
        for entry, raw in zip(found[::2], found[1::2], strict=True):
            assert isinstance(entry, bytes)
            room, _, name = entry.partition(b" ")
            if not isinstance(raw, bytes):
                raise StorageError(f"alarm queue entry {entry!r} has no alarm")
            alarms.append(_decode_alarm(room.decode("ascii"), name, raw))
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
        keys = [self._alarms_key(room), self._prefix + _ALARM_QUEUE, self._fence_key(room)]
        args = [
            _encode_name(alarm.name),
            _queue_entry(room, alarm.name),
            _encode_alarm(alarm),
            *((b"", b"") if new is None else (_encode_alarm(new), _score(new))),
            fence,
        ]
        replaced = await self._call(
            "replace an alarm",
            lambda redis: _REPLACE_ALARM(
                keys=keys, args=args, client=redis, callback=_fenced(_is_one)
            ),
        )
        if isinstance(replaced, _Refused):
            raise OwnershipLostError(room, fence, replaced.fence)
        return replaced

    # ----------------------------------------------------------------- internals

    def _key(self, kind: bytes, room: str, name: str) -> bytes:
        return b"%s%s%s:%s" % (self._prefix, kind, _encode_room(room), _encode_name(name))

    def _log_key(self, room: str) -> bytes:
        return b"%s%s%s" % (self._prefix, _LOG, _encode_room(room))

    def _fence_key(self, room: str) -> bytes:
        return b"%s%s%s" % (self._prefix, _FENCE, _encode_room(room))

    def _alarms_key(self, room: str) -> bytes:
        return b"%s%s%s" % (self._prefix, _ALARMS, _encode_room(room))

    def _make_client(self) -> _Client:
        client: _Client = coredis.Redis.from_url(
            self._url,
            connect_timeout=self._timeout,
            # A command whose connection was lost (Redis restarted) is tried again, at
            # most twice, on a new one: every command here leaves the same state when
            # applied twice (a claim that was applied before its reply was lost is
            # claimed again; a replaced alarm, or a record whose commit changed its
            # token hash, then answers False though it was written as asked). `_call`
            # bounds the whole.
            retry_policy=ConstantRetryPolicy((RedisConnectionError,), retries=2, delay=0.01),
        )
        pool = client.connection_pool
        pool.connection_class = guarded(pool.connection_class)
        return client

    async def _call(self, action: str, command: Callable[[_Client], Awaitable[T]]) -> T:
        """Run one command, within ``timeout``, translating every failure to StorageError."""
        runner = self._runner
        if runner is None:
            raise StorageError("Redis storage is not open")
        if runner.exited.is_set():
            raise StorageError("the Redis client has stopped") from runner.error
        client = runner.client
        try:
            with trio.fail_after(self._timeout):
                try:
                    return await command(client)
                except (RedisError, OSError) as exc:
                    # coredis turns a cancelled connection attempt into an error: if that is
                    # what happened, raise the cancellation (our deadline's or the caller's).
                    await trio.lowlevel.checkpoint_if_cancelled()
                    raise StorageError(f"Redis could not {action}: {exc}") from exc
        except trio.TooSlowError as exc:
            # The connection may be hung for good (a dead peer sends no reset): drop every
            # connection so the next operation makes a new one.
            client.connection_pool.disconnect()
            raise StorageError(f"Redis did not {action} within {self._timeout} s") from exc


@final
class _ClientRunner:
    """Keeps a coredis client entered, so its connection pool's task group is open.

    Runs as a system task: cancelled when `trio.run` ends if nobody stopped it, and an
    exception escaping it would crash the run, so none does.
    """

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.entered = trio.Event()
        self.exited = trio.Event()
        self.error: Exception | None = None
        self._scope = trio.CancelScope()

    async def run(self) -> None:
        try:
            with self._scope:
                async with self.client:
                    self.entered.set()
                    await trio.sleep_forever()
        except* Exception as group:  # a cancellation still propagates
            self.error = group
            _logger.exception("the Redis client of RedisStorage stopped")
        finally:
            self.entered.set()
            self.exited.set()

    async def stop(self) -> None:
        self._scope.cancel()
        await self.exited.wait()


def _expiry_ms(expires_at: float) -> int:
    """``expires_at`` as the milliseconds of ``PXAT``; at most 0 means already expired."""
    if not math.isfinite(expires_at):
        raise ValueError(f"expires_at must be a finite time, got {expires_at!r}")
    return math.ceil(expires_at * 1000)


def _pxat(expires_at: float) -> int:
    # PXAT must be positive: 1 ms after the epoch is in the past, and Redis removes the key.
    return max(_expiry_ms(expires_at), 1)


def _encode_room(room: str) -> bytes:
    if ROOM_NAME_PATTERN.fullmatch(room) is None:
        raise RoomNameError(room)  # a ":" in it would make keys ambiguous
    return room.encode("ascii")


def _queue_entry(room: str, name: str) -> bytes:
    return b"%s %s" % (_encode_room(room), _encode_name(name))


def _encode_name(name: str) -> bytes:
    # surrogatepass: every str has exactly one encoding, even a lone surrogate.
    return name.encode("utf-8", "surrogatepass")


def _is_one(response: object) -> bool:
    return response == 1


def _commit_reply(response: object) -> Sequence[bool] | int:
    """The commit's flags, or the room's fence if it refused the commit's token."""
    if isinstance(response, bytes):
        refused, _, fence = response.partition(b" ")
        assert refused == b"fenced"
        return int(fence)
    return _flags(response)


def _flags(response: object) -> Sequence[bool]:
    return [flag == 1 for flag in _list(response)]


def _list(response: object) -> list[object]:
    assert isinstance(response, list)
    # coredis types a script's reply as anything: a list of unknowns, to pyright.
    items: list[object] = response  # pyright: ignore[reportUnknownVariableType]
    return items


def _encode_alarm(alarm: StoredAlarm) -> bytes:
    # The scripts compare encodings byte for byte: one float for every equal ``at``
    # (+ 0.0 makes -0.0 the 0.0 it equals).
    return msgpack.packb([float(alarm.at) + 0.0, alarm.attempt])


def _score(alarm: StoredAlarm) -> str:
    # Passed to ZADD as text: repr is exact, where Lua's tonumber/tostring would round.
    return repr(float(alarm.at))


def _decode_alarm(room: str, name: bytes, raw: bytes) -> StoredAlarm:
    text = name.decode("utf-8", "surrogatepass")
    try:
        fields = msgpack.unpackb(raw)
    except (ValueError, msgpack.UnpackException) as exc:
        raise StorageError(f"alarm {text!r} of room {room!r}: unreadable alarm") from exc
    match fields:
        case [float() as at, int() as attempt]:
            return StoredAlarm(room=room, name=text, at=at, attempt=attempt)
        case _:
            raise StorageError(f"alarm {text!r} of room {room!r}: unexpected alarm")


def _bytes_or_none(response: object) -> bytes | None:
    assert response is None or isinstance(response, bytes)
    return response


def _done(response: object) -> None:
    assert response == 1


@final
@attrs.frozen
class _Refused:
    """A script refused a fencing token below the room's ``fence``, writing nothing."""

    fence: int


def _fenced(callback: Callable[[object], T]) -> Callable[[object], T | _Refused]:
    """``callback``, or `_Refused` when a script refused a token below the fence ({fence})."""

    def read(response: object) -> T | _Refused:
        if not isinstance(response, list):
            return callback(response)
        (fence,) = cast("list[object]", response)
        assert isinstance(fence, int)
        return _Refused(fence)

    return read


def _encode_frame(frame: LoggedFrame) -> bytes:
    # The seq first: a sorted set's members are unique, two frames' bytes may not be.
    return frame.seq.to_bytes(8, "big") + frame.data


def _decode_frame(room: str, member: object) -> LoggedFrame:
    if not isinstance(member, bytes) or len(member) < 8:
        raise StorageError(f"room {room!r}: unreadable replay log entry")
    return LoggedFrame(int.from_bytes(member[:8], "big"), member[8:])


def _encode_record(record: SessionRecord) -> bytes:
    cursor = record.replay
    packed = b"" if cursor is None else msgpack.packb([cursor.count, cursor.seq])
    return msgpack.packb(
        [
            _RECORD_VERSION,
            record.data,
            record.wire,
            packed,
            record.token_hash,
            float(record.expires_at),
        ]
    )


def _decode_cursor(packed: bytes) -> ReplayCursor | None:
    if not packed:
        return None
    match msgpack.unpackb(packed):
        case [int() as count, int() as seq]:
            return ReplayCursor(count, seq)
        case _:
            raise ValueError("unexpected replay cursor")


def _decode_record(room: str, session_id: str, raw: bytes) -> SessionRecord:
    try:
        fields = msgpack.unpackb(raw)
    except (ValueError, msgpack.UnpackException) as exc:
        raise StorageError(f"session {session_id!r} of room {room!r}: unreadable record") from exc
    match fields:
        case [1, bytes() as data, str() as wire, bytes() as token_hash, float() as expires_at]:
            return SessionRecord(
                room=room,
                session_id=session_id,
                data=data,
                wire=wire,
                token_hash=token_hash,
                expires_at=expires_at,
            )
        case [
            int() as version,
            bytes() as data,
            str() as wire,
            bytes() as packed,
            bytes() as token_hash,
            float() as expires_at,
        ] if version == _RECORD_VERSION:
            try:
                cursor = _decode_cursor(packed)
            except (ValueError, msgpack.UnpackException) as exc:
                raise StorageError(
                    f"session {session_id!r} of room {room!r}: unreadable replay cursor"
                ) from exc
            return SessionRecord(
                room=room,
                session_id=session_id,
                data=data,
                wire=wire,
                token_hash=token_hash,
                expires_at=expires_at,
                replay=cursor,
            )
        case _:
            raise StorageError(f"session {session_id!r} of room {room!r}: unexpected record")
