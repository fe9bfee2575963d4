"""`RedisBackplane`: broadcasts over Redis pub/sub, membership in Redis sorted sets.

::

    from trio_rooms.backplane.redis import RedisBackplane

    backplane = RedisBackplane("redis://localhost:6379/0")
    async with trio_rooms.open_rooms(ChatRoom, backplane=backplane) as rooms:
        ...

Layout in Redis (``prefix`` is ``"trio_rooms:"`` by default):

- channel ``{prefix}room:{name}``: one message per broadcast, the publishing node's
  16-byte id followed by the payload (a node skips its own). Only ``SUBSCRIBE``, never
  ``PSUBSCRIBE``, and only on validated room names.
- sorted set ``{prefix}members:{name}``: one entry ``{node id}:{session id}`` per
  session, scored with the time (Redis's clock, in ms) it expires at. Every node
  refreshes its entries every ``ttl / 3``; readers ignore and trim expired ones, so a
  node that dies without cleaning up stops being listed within ``ttl``.

A node holds three connections: one publishes (in order, pipelined), one is
subscribed, one runs membership scripts and `members` queries. Losing any of them, or
a reply that takes longer than ``timeout``, ends all three; the node is then degraded
until it has connected again, subscribed again and re-added its members.
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Final, TypeVar, cast, final
from urllib.parse import urlsplit

import trio

try:
    import anyio
    import coredis
    from coredis.commands import CommandRequest
    from coredis.connection import BaseConnection
    from coredis.exceptions import RedisError
    from coredis.typing import RedisValueT, ResponseType
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "trio_rooms.backplane.redis needs coredis: pip install trio_rooms[redis]"
    ) from _missing

from .._core.backplane import BackplaneStatistics, Delivery
from .._core.config import validate_room_name
from .._errors import BackplaneError
from .._redis import guarded

__all__ = ["RedisBackplane"]

ItemT = TypeVar("ItemT")

_logger = logging.getLogger("trio_rooms")

#: Commands per round trip: PUBLISHes when many are queued, membership writes.
_BATCH: Final = 512
#: Channels per SUBSCRIBE or UNSUBSCRIBE, and members per membership command.
_CHUNK: Final = 1000
#: The first reconnect delay; it doubles up to ``max_backoff``.
_FIRST_BACKOFF: Final = 0.05
_NODE_ID_SIZE: Final = 16

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

_REFRESH_SHA: Final = hashlib.sha1(_REFRESH_SCRIPT.encode()).hexdigest()
_MEMBERS_SHA: Final = hashlib.sha1(_MEMBERS_SCRIPT.encode()).hexdigest()


class _ConnectionEndedError(Exception):
    """A connection to Redis ended, or could not be made."""


#: What losing Redis looks like: these end the connections and degrade the node;
#: anything else is a bug and propagates out of `RedisBackplane.run`.
_FAULTS: Final = (
    RedisError,
    OSError,  # TimeoutError included: coredis's reply timeout
    trio.TooSlowError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    _ConnectionEndedError,
)


@final
class RedisBackplane:
    """A `trio_rooms.Backplane` on one Redis server (not Redis Cluster).

    Broadcasts are at most once and in order per publishing node; see the module
    docstring for the keys and channels. Every method but `run` and `members` is
    synchronous and never blocks: work is queued, bounded, for the task `run` is.

    Args:
        url: ``redis://[[user]:password@]host:port/db``, ``rediss://...`` or
            ``unix://...``, as coredis understands it. Its password is never logged.
        prefix: Starts every channel and key, to share a Redis between deployments.
        ttl: Seconds a node's members stay listed after the node was last heard from.
        timeout: Seconds to wait for a connection or a reply before the connection is
            considered lost; also the bound on `members`.
        health_check_interval: Seconds between PINGs on the subscribed connection,
            which is otherwise silent when no one publishes.
        max_queue: Payloads waiting to be published, and membership changes waiting
            to be written; beyond it they are dropped and counted.
        max_backoff: Longest wait between two reconnect attempts, in seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "trio_rooms:",
        ttl: float = 30.0,
        timeout: float = 2.0,
        health_check_interval: float = 1.0,
        max_queue: int = 10_000,
        max_backoff: float = 2.0,
    ) -> None:
        if ttl <= 0 or timeout <= 0 or health_check_interval <= 0 or max_backoff <= 0:
            raise ValueError("ttl, timeout, health_check_interval and max_backoff must be > 0")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self._url = url
        self._where = _redacted(url)
        self._prefix = prefix
        self._ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self._timeout = timeout
        self._health_check_interval = health_check_interval
        self._max_queue = max_queue
        self._max_backoff = max_backoff
        node = uuid.uuid4()
        self._node_bytes = node.bytes
        self._member_prefix = node.hex + ":"

        # Broadcasts: (channel, node id + payload), drained by the publisher task.
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._queue_filled = trio.Event()
        self._in_flight = 0
        # Subscriptions: what the node wants; the subscriber task makes Redis agree.
        self._rooms_by_channel: dict[bytes, str] = {}
        self._subscriptions_changed = trio.Event()
        # Membership: local truth, and the changes not yet written.
        self._local: dict[str, set[str]] = {}
        self._pending: dict[tuple[str, str], bool] = {}
        self._writing: dict[tuple[str, str], bool] = {}
        self._membership_changed = trio.Event()

        self._running = False
        #: The connection `members` asks on while connected (ready), else None.
        self._commands: BaseConnection | None = None
        self._commands_changed = trio.Event()
        self._ready_at: float | None = None
        self._connected_before = False
        self._degraded = False
        self._outage_started = 0.0
        self._published = 0
        self._received = 0
        self._dropped = 0
        self._reconnects = 0

    # ------------------------------------------------------------------ the port

    async def run(self, node: Delivery, *, task_status: trio.TaskStatus[None]) -> None:
        """Connect, publish, subscribe and deliver to ``node`` until cancelled.

        ``started()`` is called at once, before connecting: a node whose Redis is down
        starts and serves its local sessions, degraded. Losing Redis is logged once per
        outage (WARNING) and never raised; reconnects use exponential backoff with
        jitter, capped at ``max_backoff``. Cancelling closes the connections.

        Raises:
            RuntimeError: ``run`` is already running.
        """
        if self._running:
            raise RuntimeError("RedisBackplane.run is already running")
        self._running = True
        task_status.started()
        try:
            failures = 0
            while True:
                self._ready_at = None
                fault = await self._serve_once(node)
                self._on_lost(fault)
                if self._ready_at is not None and (
                    trio.current_time() - self._ready_at >= self._max_backoff
                ):
                    failures = 0  # it was up for a while: this is a new outage
                delay = min(self._max_backoff, _FIRST_BACKOFF * 2**failures)
                failures += 1
                await trio.sleep(random.uniform(delay / 2, delay))
        finally:
            self._running = False
            self._set_commands(None)

    def publish(self, room: str, payload: bytes) -> None:
        """Queue ``payload`` for the other nodes subscribed to ``room``; never blocks.

        Dropped and counted when degraded or when ``max_queue`` payloads are waiting.
        """
        channel = self._channel(room)
        if self._degraded or len(self._queue) >= self._max_queue:
            self._dropped += 1
            return
        self._queue.append((channel, self._node_bytes + payload))
        self._queue_filled.set()

    def subscribe(self, room: str) -> None:
        """Deliver ``room``'s broadcasts from now on (once Redis has the subscription)."""
        channel = self._channel(room)
        if channel not in self._rooms_by_channel:
            self._rooms_by_channel[channel] = room
            self._subscriptions_changed.set()

    def unsubscribe(self, room: str) -> None:
        """Deliver nothing more of ``room``, from this call on."""
        if self._rooms_by_channel.pop(self._channel(room), None) is not None:
            self._subscriptions_changed.set()

    def join(self, room: str, session_id: str) -> None:
        """List ``session_id`` in ``room`` on every node (written soon, kept alive)."""
        self._members_key(room)
        self._local.setdefault(room, set()).add(session_id)
        self._change(room, session_id, joined=True)

    def leave(self, room: str, session_id: str) -> None:
        """Stop listing ``session_id`` in ``room``."""
        self._members_key(room)
        sessions = self._local.get(room)
        if sessions is not None:
            sessions.discard(session_id)
            if not sessions:
                del self._local[room]
        self._change(room, session_id, joined=False)

    async def members(self, room: str) -> Sequence[str]:
        """The session ids in ``room`` on every live node, this one's first.

        Raises:
            BackplaneError: degraded, or Redis did not answer within ``timeout``.
        """
        key = self._members_key(room)
        try:
            with trio.fail_after(self._timeout):
                commands = await self._wait_connected()
                reply = await commands.create_request(b"EVALSHA", _MEMBERS_SHA, 1, key)
        except trio.TooSlowError as exc:
            raise BackplaneError(
                f"Redis at {self._where} did not answer within {self._timeout} s"
            ) from exc
        except _FAULTS as exc:
            raise BackplaneError(f"Redis at {self._where} failed: {exc!r}") from exc
        found = dict.fromkeys(self._local.get(room, ()))
        for entry in _byte_strings(reply):
            member = entry.decode("utf-8", "replace")
            node_hex, separator, session_id = member.partition(":")
            if separator and node_hex + ":" != self._member_prefix:
                found.setdefault(session_id)
        return list(found)

    def statistics(self) -> BackplaneStatistics:
        """The current state and counters."""
        return BackplaneStatistics(
            degraded=self._degraded,
            published=self._published,
            received=self._received,
            dropped=self._dropped,
            reconnects=self._reconnects,
        )

    # ------------------------------------------------------------------ names

    def _channel(self, room: str) -> bytes:
        return f"{self._prefix}room:{validate_room_name(room)}".encode()

    def _members_key(self, room: str) -> str:
        return f"{self._prefix}members:{validate_room_name(room)}"

    # ------------------------------------------------------------------ state

    def _change(self, room: str, session_id: str, *, joined: bool) -> None:
        key = (room, session_id)
        if key not in self._pending and len(self._pending) >= self._max_queue:
            # A dropped join comes back with the next refresh; a dropped leave expires.
            self._dropped += 1
            return
        self._pending[key] = joined
        self._membership_changed.set()

    def _set_commands(self, commands: BaseConnection | None) -> None:
        self._commands = commands
        self._commands_changed.set()
        self._commands_changed = trio.Event()

    async def _wait_connected(self) -> BaseConnection:
        """The commands connection; waits while the first connection is being made."""
        while self._commands is None:
            if self._degraded or not self._running:
                raise BackplaneError(f"Redis at {self._where} is not connected")
            await self._commands_changed.wait()
        return self._commands

    def _on_ready(self, commands: BaseConnection) -> None:
        self._ready_at = trio.current_time()
        self._set_commands(commands)
        if self._connected_before:
            self._reconnects += 1
        self._connected_before = True
        if self._degraded:
            self._degraded = False
            _logger.info(
                "backplane: Redis at %s is back after %.1f s",
                self._where,
                trio.current_time() - self._outage_started,
            )

    def _on_lost(self, fault: BaseException) -> None:
        self._set_commands(None)
        self._dropped += len(self._queue) + self._in_flight
        self._queue.clear()
        self._in_flight = 0
        # Membership writes are idempotent: retry the unconfirmed ones, unless newer.
        for key, joined in self._writing.items():
            if key in self._pending:
                continue
            if len(self._pending) >= self._max_queue:
                self._dropped += 1
            else:
                self._pending[key] = joined
        self._writing = {}
        if not self._degraded:
            self._degraded = True
            self._outage_started = trio.current_time()
            _logger.warning(
                "backplane: Redis at %s is unreachable (%s); broadcasts reach this node's "
                "sessions only until it is back",
                self._where,
                _describe(fault),
            )

    # ------------------------------------------------------------------ connected

    async def _serve_once(self, node: Delivery) -> BaseException:
        """Connect and serve until the connection is lost; return why."""
        fault: BaseException | None = None
        try:
            await self._serve(node)
        except* _FAULTS as group:
            fault = _first_leaf(group)
        assert fault is not None, "_serve returns only by raising"
        return fault

    async def _serve(self, node: Delivery) -> None:
        pool = coredis.ConnectionPool.from_url(
            self._url,
            decode_responses=False,
            stream_timeout=self._timeout,
            connect_timeout=self._timeout,
            max_connections=3,
            client_name="trio_rooms.backplane",
        )
        # pyright sees a union of pools; each gets a subclass of its own class.
        pool.connection_class = guarded(pool.connection_class)  # pyright: ignore[reportAttributeAccessIssue]
        async with pool:
            connections: list[BaseConnection] = []
            for _ in range(3):
                # connect_timeout bounds the TCP connect, stream_timeout each reply of
                # the handshake; this bounds the whole.
                with trio.fail_after(3 * self._timeout):
                    connections.append(await pool.get_connection())
            publisher, subscriber, commands = connections
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, publisher)
                nursery.start_soon(self._watch, commands)
                nursery.start_soon(self._receive, subscriber, node)
                # Before the node counts as connected: scripts loaded, members re-added,
                # every room subscribed (a PING answered after SUBSCRIBE proves it).
                await self._round_trips(
                    commands,
                    [
                        _command(b"SCRIPT LOAD", _REFRESH_SCRIPT),
                        _command(b"SCRIPT LOAD", _MEMBERS_SCRIPT),
                    ],
                )
                await self._refresh(commands)
                subscribed = self._update_subscriptions(subscriber, set())
                await self._ping(subscriber)
                self._on_ready(commands)
                nursery.start_soon(self._publish_forever, publisher)
                nursery.start_soon(self._subscribe_forever, subscriber, subscribed)
                nursery.start_soon(self._check_health_forever, subscriber)
                nursery.start_soon(self._write_membership_forever, commands)

    async def _round_trips(
        self, connection: BaseConnection, commands: Sequence[CommandRequest[ResponseType]]
    ) -> None:
        """Send ``commands`` pipelined, in batches; raise if a batch had an error.

        A batch is one write and one wait (``RequestBatch``), not one per command. Each
        batch's replies must come within ``timeout`` of waiting for them; coredis drops
        the connection when they do not.
        """
        batches = [
            connection.create_request_batch(commands[start : start + _BATCH], timeout=self._timeout)
            for start in range(0, len(commands), _BATCH)
        ]
        for batch in batches:
            with trio.fail_after(2 * self._timeout):  # coredis's own timeout comes first
                results = await batch
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    async def _ping(self, connection: BaseConnection) -> None:
        """PING, and raise unless PONG comes within ``timeout``.

        On the subscribed connection too: with RESP3 (coredis speaks nothing else) a
        subscribed connection takes any command and replies normally, as coredis's own
        ``PubSub._keepalive`` relies on.
        """
        with trio.fail_after(self._timeout):
            await connection.create_request(b"PING")

    async def _watch(self, connection: BaseConnection) -> None:
        """Raise once ``connection`` has ended (it receives no push messages)."""
        async for _ in connection.push_messages:
            pass
        raise _ConnectionEndedError(f"{connection!r} ended")  # pragma: no cover

    async def _receive(self, subscriber: BaseConnection, node: Delivery) -> None:
        """Deliver every message on a subscribed room's channel, in order."""
        # coredis parses every message of a socket read at once into this stream, but
        # its ``push_messages`` hands them out one scheduler turn each: the sessions'
        # writers would then wake, and make a system call, once per message. Taking
        # the rest of the read at once lets each writer send the whole burst together.
        buffered = subscriber._push_message_buffer_out  # pyright: ignore[reportPrivateUsage]
        async for push in subscriber.push_messages:
            self._on_push(push, node)
            while True:
                try:
                    push = buffered.receive_nowait()
                except anyio.WouldBlock:
                    break
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    break  # push_messages raises on its next turn
                self._on_push(push, node)
        raise _ConnectionEndedError("the subscribed connection ended")  # pragma: no cover

    def _on_push(self, push: list[ResponseType], node: Delivery) -> None:
        if len(push) != 3 or push[0] != b"message":
            return  # subscribe and unsubscribe confirmations
        channel, data = push[1], push[2]
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return
        room = self._rooms_by_channel.get(channel)
        if room is None or len(data) < _NODE_ID_SIZE or data[:_NODE_ID_SIZE] == self._node_bytes:
            return  # unsubscribed since, not a node's, or our own broadcast
        self._received += 1
        node.deliver(room, data[_NODE_ID_SIZE:])

    async def _publish_forever(self, publisher: BaseConnection) -> None:
        queue = self._queue
        while True:
            while not queue:
                self._queue_filled = trio.Event()
                await self._queue_filled.wait()
            count = min(len(queue), _BATCH)
            self._in_flight = count
            batch = [queue.popleft() for _ in range(count)]
            await self._round_trips(
                publisher, [_command(b"PUBLISH", channel, data) for channel, data in batch]
            )
            self._in_flight = 0
            self._published += count

    async def _subscribe_forever(self, subscriber: BaseConnection, subscribed: set[bytes]) -> None:
        while True:
            await self._subscriptions_changed.wait()
            self._subscriptions_changed = trio.Event()
            subscribed = self._update_subscriptions(subscriber, subscribed)

    def _update_subscriptions(
        self, subscriber: BaseConnection, subscribed: set[bytes]
    ) -> set[bytes]:
        """Send what makes Redis's subscriptions the wanted ones; return those."""
        wanted = set(self._rooms_by_channel)
        for chunk in _chunks(sorted(subscribed - wanted)):
            subscriber.send_command(b"UNSUBSCRIBE", *chunk)
        for chunk in _chunks(sorted(wanted - subscribed)):
            subscriber.send_command(b"SUBSCRIBE", *chunk)
        return wanted

    async def _check_health_forever(self, subscriber: BaseConnection) -> None:
        """PING the subscribed connection: a hung Redis is noticed within a bound."""
        while True:
            await trio.sleep(self._health_check_interval)
            await self._ping(subscriber)

    async def _write_membership_forever(self, commands: BaseConnection) -> None:
        period = self._ttl / 3
        next_refresh = trio.current_time() + period
        while True:
            with trio.move_on_at(next_refresh):
                while not self._pending:
                    self._membership_changed = trio.Event()
                    await self._membership_changed.wait()
            if self._pending:
                await self._write_changes(commands)
            if trio.current_time() >= next_refresh:
                next_refresh = trio.current_time() + period
                await self._refresh(commands)

    async def _write_changes(self, commands: BaseConnection) -> None:
        self._writing, self._pending = self._pending, {}
        joined: dict[str, list[str]] = {}
        left: dict[str, list[str]] = {}
        for (room, session_id), is_join in self._writing.items():
            (joined if is_join else left).setdefault(room, []).append(session_id)
        writes = self._refresh_commands(joined)
        for room, session_ids in left.items():
            key = self._members_key(room)
            for chunk in _chunks(session_ids):
                members = [self._member_prefix + session_id for session_id in chunk]
                writes.append(_command(b"ZREM", key, *members))
        await self._round_trips(commands, writes)
        self._writing = {}

    async def _refresh(self, commands: BaseConnection) -> None:
        """Write every local member again with a fresh expiry."""
        snapshot = {room: list(sessions) for room, sessions in self._local.items()}
        await self._round_trips(commands, self._refresh_commands(snapshot))

    def _refresh_commands(
        self, members: dict[str, list[str]]
    ) -> list[CommandRequest[ResponseType]]:
        """EVALSHAs that write ``members`` (room to session ids) with a fresh expiry."""
        writes: list[CommandRequest[ResponseType]] = []
        for room, session_ids in members.items():
            key = self._members_key(room)
            for chunk in _chunks(session_ids):
                entries = [self._member_prefix + session_id for session_id in chunk]
                writes.append(_command(b"EVALSHA", _REFRESH_SHA, 1, key, self._ttl_ms, *entries))
        return writes


# ---------------------------------------------------------------------- helpers


def _command(name: bytes, *arguments: RedisValueT) -> CommandRequest[ResponseType]:
    """A command for `BaseConnection.create_request_batch`, its reply left as it came."""
    return CommandRequest(name, *arguments, callback=_as_is, execution_parameters={})


def _as_is(response: ResponseType, **_: object) -> ResponseType:
    return response


def _chunks(items: Sequence[ItemT]) -> Iterator[Sequence[ItemT]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _byte_strings(reply: ResponseType) -> list[bytes]:
    if not isinstance(reply, list):
        raise BackplaneError(f"expected a list of members from Redis, got {reply!r}")
    return [item for item in reply if isinstance(item, bytes)]


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = cast("BaseExceptionGroup[BaseException]", error).exceptions[0]
    return error


def _describe(fault: BaseException) -> str:
    if isinstance(fault, trio.TooSlowError):
        return "no reply in time"
    if isinstance(fault, _ConnectionEndedError):
        return str(fault)
    text = str(fault)
    return f"{type(fault).__name__}: {text}" if text else type(fault).__name__


def _redacted(url: str) -> str:
    """``url`` without its user name and password, for logs and errors."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return f"{parts.scheme}://{parts.path}"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
