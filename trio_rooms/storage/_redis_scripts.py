"""The Lua scripts of `RedisStorage` but its commit's (`._redis_commit`), and their pieces.

No I/O here. Each script makes its checks and its writes in one step inside Redis; one
that refuses a fencing token below the room's fence answers {the fence}, which
`._redis_replies.fenced` reads.
"""

from __future__ import annotations

from typing import Final

from coredis.commands import Script

from ._redis_encoding import RECORD_VERSION

__all__ = [
    "CLAIM",
    "DELETE_SESSION",
    "FIND_TOKEN_HASH",
    "NEXT_ALARMS",
    "REPLACE",
    "REPLACE_ALARM",
    "REQUIRE_TYPE",
]

# The compare-and-sets read the token hash inside Redis, from the record as
# `encode_record` lays it out: msgpack [version, data (bin), wire (str), replay cursor
# (bin), token hash (bin), expires_at (float 64)] (version 1 had no cursor). (Redis's
# cmsgpack cannot decode bin.) The hash and the expiry come last, so a claim keeps the
# bytes before them and appends the new ones.
FIND_TOKEN_HASH: Final = f"""
local function token_hash_of(record)
    local head, version = string.byte(record, 1, 2)
    local hash_field
    if head == 0x95 and version == 1 then
        hash_field = 3
    elseif head == 0x96 and version == {RECORD_VERSION} then
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
REPLACE: Final = Script[bytes](
    script=FIND_TOKEN_HASH
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
CLAIM: Final = Script[bytes](
    script=FIND_TOKEN_HASH
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

# A script is not rolled back when it fails part-way, so the writing scripts (these and
# the commit) run every command that can fail (a read of a record token_hash_of cannot
# parse, a key of another type) before their first write: an error leaves nothing written.
REQUIRE_TYPE: Final = """
local function require_type(key, kind)
    local found = redis.call('TYPE', key)['ok']
    if found ~= 'none' and found ~= kind then
        error('expected a ' .. kind .. ' at ' .. key .. ', found a ' .. found)
    end
end
"""

# KEYS: the record, the room's fence; ARGV: the fencing token. Returns 1, or {the fence}.
DELETE_SESSION: Final = Script[bytes](
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
REPLACE_ALARM: Final = Script[bytes](
    script=REQUIRE_TYPE
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
NEXT_ALARMS: Final = Script[bytes](
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
