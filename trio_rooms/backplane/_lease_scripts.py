"""What a room's lease is in Redis: its keys and the Lua scripts that take, keep and drop it.

No I/O here. A lease is the key ``{prefix}lease:{room}`` holding ``{node}:{token}``, set
with a time to live; ``token`` is the room's fencing token, from ``INCR`` on the key
``{prefix}fence:{room}`` at every acquisition, so each new owner's token is larger than
every earlier one (the fence key never expires). Each script compares and writes in one
step inside Redis, so two nodes can never both take a room, nor one keep what it lost.

A holder that could not reach Redis takes its leases back with `RECLAIM_SHA` once it can:
a lease that lapsed meanwhile (or that a Redis restarted without persistence forgot) is
its own again only if no node took the room since, which the fence shows; and the fence
is raised back to the token, so that a Redis that forgot it never hands out a smaller one.
"""

from __future__ import annotations

import hashlib
from typing import Final

from coredis.commands import CommandRequest
from coredis.typing import ResponseType

from .._core.config import validate_room_name
from ..storage._redis_keys import RedisKeys
from ._scripts import command

__all__ = [
    "ACQUIRE_SHA",
    "RECLAIM_SHA",
    "RELEASE_SHA",
    "RENEW_SHA",
    "fence_key",
    "lease_key",
    "load_lease_scripts",
]

# KEYS: lease, fence. ARGV: node, ttl in ms. -> {1, token} taken; {0, "node:token"} held.
_ACQUIRE: Final = """
local held = redis.call('GET', KEYS[1])
if held then
    return {0, held}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return {1, token}
"""

# KEYS: leases. ARGV: ttl in ms, then each lease's expected value. -> the 1-based
# positions of the leases that are no longer this node's (expired, or taken since).
_RENEW: Final = """
local lost = {}
for i, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[i + 1] then
        redis.call('PEXPIRE', key, ARGV[1])
    else
        lost[#lost + 1] = i
    end
end
return lost
"""

# KEYS: lease. ARGV: expected value. -> 1 dropped, 0 it was not ours any more.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: each lease, then its fence. ARGV: ttl in ms, then each lease's value and token.
# -> the 1-based positions of the leases another node holds or has held since: a lease
# absent or still this one's is set again, if the fence is not past its token.
_RECLAIM: Final = """
local lost = {}
for i = 1, #KEYS / 2 do
    local lease, fence = KEYS[2 * i - 1], KEYS[2 * i]
    local value, token = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
    local held = redis.call('GET', lease)
    local counted = tonumber(redis.call('GET', fence) or '0')
    if (not held or held == value) and counted <= token then
        redis.call('SET', lease, value, 'PX', ARGV[1])
        if counted < token then
            redis.call('SET', fence, token)
        end
    else
        lost[#lost + 1] = i
    end
end
return lost
"""

ACQUIRE_SHA: Final = hashlib.sha1(_ACQUIRE.encode()).hexdigest()
RENEW_SHA: Final = hashlib.sha1(_RENEW.encode()).hexdigest()
RELEASE_SHA: Final = hashlib.sha1(_RELEASE.encode()).hexdigest()
RECLAIM_SHA: Final = hashlib.sha1(_RECLAIM.encode()).hexdigest()


def lease_key(prefix: str, room: str) -> str:
    return f"{prefix}lease:{validate_room_name(room)}"


def fence_key(prefix: str, room: str) -> str:
    """``room``'s fence: the storage's key (`RedisKeys.fence`), which commits check."""
    return RedisKeys(prefix.encode()).fence(room).decode()


def load_lease_scripts() -> list[CommandRequest[ResponseType]]:
    """The ``SCRIPT LOAD`` commands that make the four SHAs callable."""
    scripts = (_ACQUIRE, _RENEW, _RELEASE, _RECLAIM)
    return [command(b"SCRIPT LOAD", script) for script in scripts]
