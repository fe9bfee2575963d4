"""A `Commit` in Redis: one script that writes it whole, after the room's fence allows it.

No I/O here. `commit_arguments` lays a commit out as the script's KEYS and ARGV, in the
bytes of RESP, `COMMIT` writes it (sent by `CommitLine`, or whole as `commit_command`'s
EVALSHA on a relay link), `commit_reply` and `commit_result` read what it answers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Final

from coredis.commands import Script

from .._core.storage import Commit, LoggedFrame
from .._errors import OwnershipLostError, StorageError
from .._resp import Reply, RespError
from ._redis_encoding import encode_alarm, encode_record, pxat, score
from ._redis_keys import RedisKeys, encode_name, queue_entry
from ._redis_replies import flags
from ._redis_scripts import FIND_TOKEN_HASH, REQUIRE_TYPE

__all__ = [
    "COMMIT",
    "COMMIT_SOURCE",
    "commit_arguments",
    "commit_command",
    "commit_reply",
    "commit_result",
]

# KEYS: the room's alarms, the alarm queue, one key per value, one per record, [the
# room's log], one per stream added to, the room's fence.
# ARGV: how many values, alarms and records; then per value 'p' and the bytes, or 'd' and
# ''; per alarm its name, its queue entry, its encoding and its at, or '' and '' to
# cancel it; per record '1' and the expected token hash, or '0' and '' (unconditional),
# the record and its PXAT; then how many logged frames, how many the log keeps, after how
# many ms without a frame the log expires (0: never), and per frame its seq (the score)
# and its member; then how many stream entries, the streams' MAXLEN ~ bound and each
# entry's data (stored in the field 'e', a relay stream's: see `RelayedCommits`); last
# the commit's fencing token (0: unfenced). With frames, the room's log is the key after
# the records'.
# Returns 1 or 0 per record: written or not; or, writing nothing, 'fenced <the fence>'
# when the token is below the room's fence.
COMMIT: Final = Script[bytes](
    script=FIND_TOKEN_HASH
    + REQUIRE_TYPE
    + """
local nvalues, nalarms, nrecords = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local first_alarm = 4 + 2 * nvalues
local first_record = first_alarm + 4 * nalarms
local first_frame = first_record + 4 * nrecords
local nframes = tonumber(ARGV[first_frame])
local first_entry = first_frame + 3 + 2 * nframes
local nentries = tonumber(ARGV[first_entry])
local first_stream = 3 + nvalues + nrecords + (nframes > 0 and 1 or 0)
if nalarms > 0 then
    require_type(KEYS[1], 'hash')
    require_type(KEYS[2], 'zset')
end
for i = 0, nentries - 1 do
    require_type(KEYS[first_stream + i], 'stream')
end
local fence_key, fence = KEYS[#KEYS], ARGV[#ARGV]
local raise_fence = false
if fence ~= '0' then
    local stored = redis.call('GET', fence_key)
    if stored and tonumber(fence) < tonumber(stored) then
        return 'fenced ' .. stored
    end
    -- Written only if it rises: the usual commit, at the room's fence, leaves it be.
    raise_fence = not stored or tonumber(stored) < tonumber(fence)
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
if nframes > 0 then
    -- The first write: on a log of another type its ZADD fails, and nothing was written
    -- (no TYPE check first). The pairs of score and member straight from ARGV, 500 per
    -- ZADD (unpack's bound on arguments is ~8000).
    local log = KEYS[3 + nvalues + nrecords]
    local first = first_frame + 3
    local last = first + 2 * nframes - 1
    for from = first, last, 1000 do
        redis.call('ZADD', log, unpack(ARGV, from, math.min(from + 999, last)))
    end
    redis.call('ZREMRANGEBYRANK', log, 0, -1 - tonumber(ARGV[first_frame + 1]))
    local expire_ms = tonumber(ARGV[first_frame + 2])
    if expire_ms > 0 then
        redis.call('PEXPIRE', log, expire_ms)  -- a gone room's log goes too
    end
end
if raise_fence then
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
-- Last: what the frames this commit let go are, added only once everything above is.
local cap = ARGV[first_entry + 1]
for i = 0, nentries - 1 do
    local stream = KEYS[first_stream + i]
    redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', 'e', ARGV[first_entry + 2 + i])
end
return written
"""
)


#: `COMMIT`'s source, as Redis loads it.
COMMIT_SOURCE: Final = COMMIT.script.encode() if isinstance(COMMIT.script, str) else COMMIT.script
#: `COMMIT`'s EVALSHA and its SHA as RESP bulk strings: a command's first two arguments.
_EVALSHA: Final = b"$7\r\nEVALSHA\r\n$40\r\n%b\r\n" % (
    hashlib.sha1(COMMIT_SOURCE).hexdigest().encode()
)


def commit_arguments(
    keys: RedisKeys,
    commit: Commit,
    entries: Sequence[tuple[bytes, bytes]] = (),
    cap: int = 1,
) -> tuple[int, bytes]:
    """How many arguments `COMMIT` gets after its SHA for ``commit`` (its number of KEYS,
    the KEYS, the ARGV), and those arguments as the bytes of RESP bulk strings.

    ``entries`` are stream entries (the stream's key, the entry's data) the script adds
    once the commit is written, each stream capped at about ``cap`` entries.

    Encoded here, not by `resp_command`: a frame's two arguments (its score and its
    member, which starts with its seq) are one formatting of its bytes, not two
    arguments of three pieces each and an 8-byte prefix joined in between.
    """
    room, frames = commit.room, commit.frames
    alarms, alarm_queue, log, fence_key = keys.of_commit(room)
    script_keys = [alarms, alarm_queue]
    args = [b"%d" % len(commit.values), b"%d" % len(commit.alarms), b"%d" % len(commit.records)]
    for key, value in commit.values.items():
        script_keys.append(keys.state(room, key))
        args += (b"d", b"") if value is None else (b"p", value)
    for name, alarm in commit.alarms.items():
        args += (encode_name(name), queue_entry(room, name))
        args += (b"", b"") if alarm is None else (encode_alarm(alarm), score(alarm).encode())
    for write in commit.records:
        record, expected = write.record, write.expected_token_hash
        script_keys.append(keys.session(record.room, record.session_id))
        args += (b"0", b"") if expected is None else (b"1", expected)
        args += (encode_record(record), b"%d" % pxat(record.expires_at))
    expire_ms = math.ceil(commit.frames_expire_after * 1000)
    args += (b"%d" % len(frames), b"%d" % max(commit.keep_frames, 1), b"%d" % expire_ms)
    if frames:
        script_keys.append(log)
    script_keys += (stream for stream, _ in entries)
    script_keys.append(fence_key)
    head = (b"%d" % len(script_keys), *script_keys, *args)
    pieces = [_BULK % (len(arg), arg) for arg in head]
    if frames:
        pieces += _frame_arguments(frames)
    tail = (b"%d" % len(entries), b"%d" % cap, *(data for _, data in entries), b"%d" % commit.fence)
    pieces += (_BULK % (len(arg), arg) for arg in tail)
    return len(head) + 2 * len(frames) + len(tail), b"".join(pieces)


def commit_command(
    keys: RedisKeys, commit: Commit, entries: Sequence[tuple[bytes, bytes]], cap: int
) -> bytes:
    """``commit`` as the RESP bytes of one EVALSHA of `COMMIT`, for a connection of the
    caller's (`RelayedCommits`): ``entries`` (a stream's key, an entry's data) are added to
    their streams (``MAXLEN ~ cap``) within it, last, only if it is written; its reply goes
    to `commit_result`. ``commit`` is checked already (`check_commit`)."""
    count, arguments = commit_arguments(keys, commit, entries, cap)
    return b"*%d\r\n%b%b" % (count + 2, _EVALSHA, arguments)


def commit_result(commit: Commit, reply: Reply) -> Sequence[bool]:
    """What `RedisStorage.commit` returns for ``commit``, from the reply to its
    `commit_command`.

    Raises:
        OwnershipLostError: the room's fence is above ``commit.fence``.
        StorageError: Redis refused it (NOSCRIPT too: the script was not loaded).
    """
    if isinstance(reply, RespError):
        raise StorageError(f"Redis could not commit: {reply}")
    result = commit_reply(reply)
    if isinstance(result, int):
        raise OwnershipLostError(commit.room, commit.fence, result)
    return result


def _frame_arguments(frames: Sequence[LoggedFrame]) -> list[bytes]:
    """Per frame, its score (its seq in decimal) and its member (its seq in 8 bytes, then
    its bytes: what `decode_frame` reads) as RESP, in one piece."""
    digits = len(b"%d" % frames[0].seq)
    if digits == len(b"%d" % frames[-1].seq):  # (their seqs increase: `check_commit`)
        # Every score is as long: one format for the commit, the seq formatted in it.
        frame = _FRAME_OF_DIGITS % digits
        return [frame % (f.seq, len(f.data) + 8, f.seq.to_bytes(8, "big"), f.data) for f in frames]
    pieces: list[bytes] = []
    for f in frames:
        seq = b"%d" % f.seq
        pieces.append(_FRAME % (len(seq), seq, len(f.data) + 8, f.seq.to_bytes(8, "big"), f.data))
    return pieces


#: One RESP bulk string: its length, its bytes.
_BULK: Final = b"$%d\r\n%b\r\n"
#: A logged frame's two arguments as RESP: its score, and its member (seq, then data).
_FRAME: Final = b"$%d\r\n%b\r\n$%d\r\n%b%b\r\n"
#: `_FRAME` for scores of a given number of digits: the format of a commit's frames.
_FRAME_OF_DIGITS: Final = b"$%d\r\n%%d\r\n$%%d\r\n%%b%%b\r\n"


def commit_reply(response: object) -> Sequence[bool] | int:
    """The commit's flags, or the room's fence if it refused the commit's token."""
    if isinstance(response, bytes):
        refused, _, fence = response.partition(b" ")
        assert refused == b"fenced"
        return int(fence)
    return flags(response)
