"""What presence keeps in Redis: key names and the Lua scripts that order every change.

Per room (``{prefix}`` as the backplane's):

- hash ``{prefix}presence:{room}``: ref -> the presence: the node's id (32 hex
  digits, which the scripts read) and then msgpack ``[key, session id, meta]``;
- sorted set ``{prefix}presence-nodes:{room}``: the nodes with presences there, scored
  with the time (Redis's clock, ms) they expire at unless refreshed (as membership);
- string ``{prefix}presence-seq:{room}``: the number of the room's last diff;
- channel ``{prefix}presence:{room}``: each diff, msgpack ``[seq, joins, leaves]``,
  each of them a list of ``[ref, presence]``.

Every script that changes the hash numbers its diff and publishes it in the same
atomic step, so the channel carries the room's diffs in the order of their numbers:
every node applies the same diffs in the same order, and a node that sees a number
skipped knows it missed one and loads the hash again (`LOAD`).
"""

from __future__ import annotations

import hashlib
from typing import Final

from coredis.commands import CommandRequest
from coredis.typing import ResponseType

from .._core.config import validate_room_name
from ._scripts import command

__all__ = ["CHANGE", "LOAD", "SYNC", "TICK", "PresenceKeys", "load_presence_scripts"]

# Shared by every script: now on Redis's clock, and the tail that numbers, publishes
# and keeps the keys alive as long as their last node (the sequence a day longer, so
# a watcher's number stays meaningful while the room is quiet).
_NOW: Final = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
"""

_PUBLISH: Final = """
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
if #joins > 0 or #leaves > 0 then
    seq = redis.call('INCR', KEYS[3])
    redis.call('PUBLISH', ARGV[1], cmsgpack.pack({seq, joins, leaves}))
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then
    redis.call('PEXPIREAT', KEYS[1], last[2])
    redis.call('PEXPIREAT', KEYS[2], last[2])
end
redis.call('PEXPIRE', KEYS[3], 86400000)
"""

# ARGV: channel, node, ttl ms, number of joins, then each join's ref and presence,
# then the refs that leave. A join of a ref held as is, or a leave of one not held,
# is left out: writing a change twice (after a lost reply) changes nothing.
# Returns {1 if the node was not listed (its other presences may be gone), seq}.
_CHANGE: Final = (
    _NOW
    + """
local added = redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
local joins, leaves = {}, {}
local count = tonumber(ARGV[4])
for i = 5, 4 + 2 * count, 2 do
    if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
        joins[#joins + 1] = {ARGV[i], ARGV[i + 1]}
    end
end
for i = 5 + 2 * count, #ARGV do
    local held = redis.call('HGET', KEYS[1], ARGV[i])
    if held then
        redis.call('HDEL', KEYS[1], ARGV[i])
        leaves[#leaves + 1] = {ARGV[i], held}
    end
end
"""
    + _PUBLISH
    + "return {added, seq}\n"
)

# ARGV: channel, node, ttl ms, then every presence the node has in the room (ref and
# presence pairs): its others there leave, the missing ones join.
_SYNC: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
local wanted = {}
for i = 4, #ARGV, 2 do
    wanted[ARGV[i]] = ARGV[i + 1]
end
local joins, leaves = {}, {}
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
    local ref, presence = held[i], held[i + 1]
    if wanted[ref] == nil and string.sub(presence, 1, 32) == ARGV[2] then
        redis.call('HDEL', KEYS[1], ref)
        leaves[#leaves + 1] = {ref, presence}
    end
end
for i = 4, #ARGV, 2 do
    if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
        joins[#joins + 1] = {ARGV[i], ARGV[i + 1]}
    end
end
"""
    + _PUBLISH
    + "return seq\n"
)

# ARGV: channel, node, ttl ms, 1 if the node has presences there (refresh it).
# Removes the presences of every node whose time ran out, as one diff of leaves.
# Returns {1 if the node had to be added back (its presences were removed), seq}.
_TICK: Final = (
    _NOW
    + """
local added = 0
if ARGV[4] == '1' then
    added = redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
end
local joins, leaves = {}, {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #expired > 0 then
    local dead = {}
    for _, node in ipairs(expired) do
        dead[node] = true
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    local held = redis.call('HGETALL', KEYS[1])
    for i = 1, #held, 2 do
        if dead[string.sub(held[i + 1], 1, 32)] then
            redis.call('HDEL', KEYS[1], held[i])
            leaves[#leaves + 1] = {held[i], held[i + 1]}
        end
    end
end
"""
    + _PUBLISH
    + "return {added, seq}\n"
)

# Returns {seq, ref, presence, ref, presence, ...}: the room as of diff ``seq``.
_LOAD: Final = """
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, seq)
return reply
"""

CHANGE: Final = hashlib.sha1(_CHANGE.encode()).hexdigest()
SYNC: Final = hashlib.sha1(_SYNC.encode()).hexdigest()
TICK: Final = hashlib.sha1(_TICK.encode()).hexdigest()
LOAD: Final = hashlib.sha1(_LOAD.encode()).hexdigest()


class PresenceKeys:
    """The keys and the channel of one room's presence."""

    __slots__ = ("channel", "keys")

    def __init__(self, prefix: str, room: str) -> None:
        name = validate_room_name(room)
        self.channel = f"{prefix}presence:{name}".encode()
        #: hash, nodes, seq: the order the scripts take them in.
        self.keys = (
            f"{prefix}presence:{name}",
            f"{prefix}presence-nodes:{name}",
            f"{prefix}presence-seq:{name}",
        )


def load_presence_scripts() -> list[CommandRequest[ResponseType]]:
    """The ``SCRIPT LOAD`` commands that make `CHANGE`, `SYNC`, `TICK` and `LOAD` callable."""
    return [command(b"SCRIPT LOAD", script) for script in (_CHANGE, _SYNC, _TICK, _LOAD)]
