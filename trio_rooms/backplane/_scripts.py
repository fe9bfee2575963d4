"""What the Redis backplane keeps in Redis: channel and key names, Lua scripts, commands.

No I/O here: the other modules build their commands from these and send them. The
layout (a channel per room, a sorted set of members per room) is described in
`trio_rooms.backplane.redis`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Final, TypeVar, final

import attrs
from coredis.commands import CommandRequest
from coredis.typing import RedisValueT, ResponseType

from .._core.config import validate_room_name

__all__ = [
    "CHUNK",
    "MEMBERS_SHA",
    "NODE_ID_SIZE",
    "REFRESH_SHA",
    "Names",
    "chunks",
    "command",
    "load_scripts",
]

ItemT = TypeVar("ItemT")

#: Channels per SUBSCRIBE or UNSUBSCRIBE, and members per membership command.
CHUNK: Final = 1000
NODE_ID_SIZE: Final = 16

# Scores are expiry times on Redis's clock (TIME), so nodes with skewed clocks agree.
_REFRESH_SCRIPT: Final = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do
    redis.call('ZADD', KEYS[1], expiry, ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
    redis.call('PEXPIREAT', KEYS[1], last[2])
end
return #ARGV - 1
"""

_MEMBERS_SCRIPT: Final = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

#: ``EVALSHA REFRESH_SHA 1 key ttl_ms entry...``: (re)adds entries expiring in ``ttl_ms``.
REFRESH_SHA: Final = hashlib.sha1(_REFRESH_SCRIPT.encode()).hexdigest()
#: ``EVALSHA MEMBERS_SHA 1 key``: the entries not expired, the expired ones trimmed.
MEMBERS_SHA: Final = hashlib.sha1(_MEMBERS_SCRIPT.encode()).hexdigest()


@final
@attrs.frozen
class Names:
    """The channel and key names of one deployment (``prefix``); validates room names."""

    prefix: str

    def channel(self, room: str) -> bytes:
        return f"{self.prefix}room:{validate_room_name(room)}".encode()

    def members_key(self, room: str) -> str:
        return f"{self.prefix}members:{validate_room_name(room)}"


def load_scripts() -> list[CommandRequest[ResponseType]]:
    """The ``SCRIPT LOAD`` commands that make `REFRESH_SHA` and `MEMBERS_SHA` callable."""
    return [command(b"SCRIPT LOAD", _REFRESH_SCRIPT), command(b"SCRIPT LOAD", _MEMBERS_SCRIPT)]


def command(name: bytes, *arguments: RedisValueT) -> CommandRequest[ResponseType]:
    """A command for `BaseConnection.create_request_batch`, its reply left as it came."""
    return CommandRequest(name, *arguments, callback=_as_is, execution_parameters={})


def _as_is(response: ResponseType, **_: object) -> ResponseType:
    return response


def chunks(items: Sequence[ItemT]) -> Iterator[Sequence[ItemT]]:
    """``items`` in slices of at most `CHUNK`."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
