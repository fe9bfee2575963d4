"""``SessionIO``: who reads and writes a session's connection, and the hand-over between them.

A session's handler reads its socket itself between messages, so that a message costs one
task step, not a hop from reader to handler; as soon as a hook waits (`run_eagerly`
tells), its reader task takes the reading over and queues what arrives (at most
``inbound_max_messages``), and gives it back once the handler waits on an empty queue
(`Reads`). Its writer drains the bounded outbound queue onto the connection, then writes
the close frame. Both tasks are started when first needed, in the session's nursery, and
then stay until it ends or parks: an idle session that never waited in a hook and was
always written to at once has no task but its caller's (a task, its coroutines, context
and scopes are most of what the cyclic GC walks per idle connection), and respawning
would cost a task per waiting message instead of a wake-up. `SessionRunner` is the one
subclass: it decides the close (``begin_close``); this module only reads, writes and
says what the connection did.
"""

from __future__ import annotations

import contextlib
import enum
from typing import final

import attrs
import trio

from .config import RoomsConfig
from .connection import Connection, ConnectionEnded, ConnectionParked
from .inbox import Inbox
from .outbound import Frame, OutboundQueue
from .ratelimit import TokenBucket
from .stats import Counters

__all__ = ["Closing", "Reads", "SessionIO"]

#: Largest write the session's writer hands to the transport at once.
_WRITE_BATCH_BYTES = 256 * 1024


class Reads(enum.Enum):
    """Which of a session's tasks reads its connection, and what the handler is doing."""

    #: The reader reads and queues; the handler is busy (in setup, or a hook waits).
    READER = "reader"
    #: The reader reads; the handler waits on an empty queue for the next frame.
    READER_HANDLER_IDLE = "reader, handler idle"
    #: The handler reads between its messages; the reader, if it was started, waits to
    #: be needed. The handler's read is then the session's watch on its caller.
    HANDLER = "handler"
    #: The connection ended: nobody reads.
    DONE = "done"
    #: The session parked (`SessionRunner.run`): its tasks end, its transport watches
    #: the connection, and the handler reads again once it runs on.
    PARKED = "parked"


@final
@attrs.frozen
class Closing:
    """How a session ends: decided once, by the first cause."""

    code: int
    reason: str
    #: The peer closed (or vanished): nothing of what it still sends is handled.
    by_peer: bool


class SessionIO:
    """The reading and writing of one session's connection (a `SessionRunner`'s base)."""

    __slots__ = (
        "_bucket",
        "_close_sent",
        "_connection",
        "_handler_ended",
        "_handler_scope",
        "_inbox",
        "_nursery",
        "_rate_limited",
        "_reader_scope",
        "_reader_started",
        "_reader_task",
        "_reads",
        "_send_close",
        "_writer_done",
        "_writer_scope",
    )

    # The runner's, which it reads and counts on.
    counters: Counters
    outbound: OutboundQueue
    closing: Closing | None

    def __init__(self) -> None:
        #: A close frame is still to be written (False once the transport is gone).
        self._send_close = True
        # The reader's waits are the session's watch on its caller (see `_read_loop`),
        # and so are the handler's reads (`SessionDispatch._handle_all`); the writer and
        # the handler's hooks are shielded: what ends them is the session's close (their
        # deadlines) or its room's hard stop (`cut`), never the caller directly.
        # The reader's and the writer's scopes are made when first needed (`_reading_scope`,
        # `_writing_scope`): an idle session has neither task, and a scope is 112 bytes.
        self._reader_scope: trio.CancelScope | None = None
        #: Who reads the connection; the reader task while it waits to be needed.
        self._reads = Reads.HANDLER
        self._reader_task: trio.lowlevel.Task | None = None
        #: The reader task was started in this run (`_lend_reading`).
        self._reader_started = False
        #: While the session runs: its nursery, connection and inbox, for the tasks
        #: started when needed (`_lend_reading`, `_start_writer`).
        self._nursery: trio.Nursery | None = None
        self._connection: Connection | None = None
        self._inbox: Inbox | None = None
        #: The session's rate limit applies (``RoomsConfig.rate_limit``); its bucket is
        #: made full at the first message, as full as it would be had it been made at
        #: the start (None: none yet).
        self._rate_limited = False
        self._bucket: TokenBucket | None = None
        self._writer_scope: trio.CancelScope | None = None
        self._handler_scope = trio.CancelScope(shield=True)
        #: Set once the writer is done (the close frame written, or never to be); made
        #: when `SessionRunner.close` first waits for it, not for every session.
        self._close_sent: trio.Event | None = None
        self._writer_done = False
        #: The handler is done (set by the runner): the reader need not watch any more.
        self._handler_ended = False

    def begin_close(
        self,
        code: int,
        reason: str,
        *,
        send_close: bool = True,
        discard: bool = False,
        by_peer: bool = False,
    ) -> None:
        """Start ending the session (`SessionRunner.begin_close`)."""
        raise NotImplementedError

    def send_error(self, text: str) -> None:
        """Queue the library's ``{"error": text}`` frame (`SessionRunner.send_error`)."""
        raise NotImplementedError

    def _config(self) -> RoomsConfig:
        raise NotImplementedError

    def _park(self, connection: Connection) -> bool:
        """Park if quiescent (`SessionRunner._park`): True if the caller is to return.

        Called by whichever task reads: the handler (its reader parked), or the reader
        (the handler waiting on an empty inbox).
        """
        raise NotImplementedError

    def _cancelled_within(self) -> bool:
        """Whether the session's own nursery was cancelled (one of its tasks failed)."""
        # Its own, not the current task's parent: the handler runs in the caller's task.
        nursery = self._nursery
        return nursery is not None and nursery.cancel_scope.cancel_called

    def _reading_scope(self) -> trio.CancelScope:
        """The reader's cancel scope (its deadline may be set before it starts, or never)."""
        scope = self._reader_scope
        if scope is None:
            scope = self._reader_scope = trio.CancelScope()
        return scope

    def _writing_scope(self) -> trio.CancelScope:
        """The writer's cancel scope, shielded (see `_write_loop`); made when first needed."""
        scope = self._writer_scope
        if scope is None:
            scope = self._writer_scope = trio.CancelScope(shield=True)
        return scope

    # ---------------------------------------------------------------- reading

    async def _read_loop(self, connection: Connection, inbox: Inbox) -> None:
        """Read while the handler cannot (see `Reads`), queueing what arrives in order.

        The session runs in its caller's task (its transport's), and the reader is what
        sees that task cancelled: each of its waits (for the peer, for the handler to
        lend the reading, for room in the inbox) loses nothing when cancelled. The
        transport is shutting down: the session is closed with 1001, its queue still
        written, and the reader reads on until the peer answers, within close_timeout.
        """
        scope = self._reading_scope()
        with scope:
            try:
                while True:
                    # One step per turn, inline: a coroutine more per idle session costs
                    # a quarter of a KiB.
                    reads = self._reads
                    if reads is Reads.DONE:
                        break
                    if reads is Reads.PARKED:
                        return  # the session's next run reads on
                    try:
                        if reads is Reads.HANDLER:
                            await self._park_reader()
                            continue
                        message = await connection.receive()
                    except trio.Cancelled:
                        if not self._cancelled_by_caller(scope):
                            raise
                        continue
                    except ConnectionParked:
                        # The handler waits on an empty inbox: it gets its end (and
                        # returns) below; else a hook runs, and the reader reads on.
                        if inbox.receiving and self._park(connection):
                            return
                        continue
                    if not self._take(message):
                        continue
                    if self._reads is Reads.READER_HANDLER_IDLE:
                        # The handler waits with nothing queued: it takes this frame and
                        # the reading on from here (no hop per message).
                        self._reads = Reads.HANDLER
                    try:
                        # Hand over without a trip through the scheduler unless the inbox
                        # is full: that is what keeps broadcasts batched.
                        inbox.send_nowait(message)
                    except trio.WouldBlock:
                        pass  # waited for below, not inside `except` (see _handle_all)
                    except trio.BrokenResourceError:
                        # No handler (setup failed): keep reading until the close
                        # handshake ends, dropping what arrives.
                        self.counters.dropped += 1
                        continue
                    else:
                        continue
                    await self._send_waiting(inbox, message)
            except ConnectionEnded as ended:
                await self._connection_ended(connection, ended)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.begin_close(1006, "connection lost", send_close=False, by_peer=True)
            finally:
                inbox.close_send()
        if self.closing is None:  # our deadline cut the peer off
            self.begin_close(1006, "close timeout", send_close=False, by_peer=True)
        if not self._handler_ended:
            await self._outlive_handler()

    async def _outlive_handler(self) -> None:
        """The peer is gone but a hook still runs: watch the caller until it returns.

        Cancelled from there, the hook gets close_timeout to return (no close frame is
        left to write), as it would have had the caller closed the session.
        """
        try:
            await self._park_reader()  # until `handler_ended`
        except trio.Cancelled:
            if self._cancelled_within():
                raise
            deadline = trio.current_time() + self._config().close_timeout
            self._handler_scope.deadline = min(self._handler_scope.deadline, deadline)
            with trio.CancelScope(shield=True):
                while not self._handler_ended:
                    await self._park_reader()
            raise

    def _writer_finished(self) -> None:
        self._writer_done = True
        if self._close_sent is not None:
            self._close_sent.set()

    async def _wait_close_sent(self) -> None:
        """Wait until the writer is done: the close frame is written (or never will be)."""
        if self._writer_done:
            await trio.lowlevel.checkpoint()
            return
        if self._close_sent is None:
            self._close_sent = trio.Event()
        await self._close_sent.wait()

    def handler_ended(self) -> None:
        """The runner's handler is done: the reader, if it waits for that, ends."""
        self._handler_ended = True
        self._wake_reader()

    async def _send_waiting(self, inbox: Inbox, message: str | bytes) -> None:
        """Queue ``message`` once the handler made room; dropped if the handler ended."""
        try:
            try:
                await inbox.send(message)
            except trio.Cancelled:
                if not self._cancelled_by_caller(self._reading_scope()):
                    raise
                await inbox.send(message)  # not queued yet: it still goes, shielded now
        except trio.BrokenResourceError:
            self.counters.dropped += 1  # the handler ended while we waited

    def _cancelled_by_caller(self, scope: trio.CancelScope) -> bool:
        """Whether a cancellation the reader saw is its caller's; if so, close with 1001.

        Not if it is the reader's own (its deadline, `cut`) or its session's (a task
        of the session failed). From here on the reader is shielded too.
        """
        if scope.shield or scope.cancel_called or self._cancelled_within():
            return False
        scope.shield = True
        self.begin_close(1001, "server shutting down")
        return True

    def _handler_parks(self, connection: Connection) -> bool:
        """The handler's read was asked to park: True if the session parked (it returns).

        Not while a reader that was started is still running (it parks itself then).
        """
        return (not self._reader_started or self._reader_task is not None) and self._park(
            connection
        )

    async def _handler_read_ended(
        self,
        connection: Connection,
        ended: ConnectionEnded | trio.BrokenResourceError | trio.ClosedResourceError,
    ) -> None:
        """The handler's read found the connection ended: close, and nobody reads on."""
        if isinstance(ended, ConnectionEnded):
            await self._connection_ended(connection, ended)
        else:
            self.begin_close(1006, "connection lost", send_close=False, by_peer=True)
        self._reads = Reads.DONE
        self._wake_reader()  # to end: nothing more will be read

    def _take(self, message: str | bytes) -> bool:
        """Count a received message; False if it is over the rate limit (dropped)."""
        self.counters.messages_in += 1
        return not self._rate_limited or self._within_rate_limit()

    def _within_rate_limit(self) -> bool:
        """Take a token for a message just received; False if it is over the limit."""
        now = trio.current_time()
        bucket = self._bucket
        if bucket is None:
            config = self._config()
            assert config.rate_limit is not None
            bucket = self._bucket = TokenBucket(config.rate_limit, config.rate_limit_burst, now)
        if not bucket.take(now):
            self._over_rate_limit(bucket.excess, self._config())
            return False
        return True

    async def _connection_ended(self, connection: Connection, ended: ConnectionEnded) -> None:
        self.begin_close(
            ended.code, ended.reason, send_close=ended.send_close, by_peer=ended.by_peer
        )
        if not ended.by_peer:
            await self._drain(connection)

    async def _park_reader(self) -> None:
        """Wait until `_wake_reader`: the handler reads meanwhile."""
        self._reader_task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort_park)

    def _abort_park(self, _: object) -> trio.lowlevel.Abort:
        self._reader_task = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _wake_reader(self) -> None:
        task, self._reader_task = self._reader_task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def _lend_reading(self) -> None:
        """The handler waits in a hook: the reader reads meanwhile, if the handler did.

        The reader is started the first time (most sessions never need it).
        """
        if self._reads is not Reads.HANDLER:
            return
        self._reads = Reads.READER
        if self._reader_started:
            self._wake_reader()
            return
        nursery, connection, inbox = self._nursery, self._connection, self._inbox
        assert nursery is not None
        assert connection is not None
        assert inbox is not None
        self._reader_started = True
        nursery.start_soon(self._read_loop, connection, inbox, name=_READER_NAME)

    def _start_writer(self) -> None:
        """The queue needs a writer (`OutboundQueue.start_lazily`): start it, if the run goes on.

        After the run (a failure ended it), there is nothing left to write with.
        """
        nursery, connection = self._nursery, self._connection
        if nursery is not None and connection is not None:
            nursery.start_soon(self._write_loop, connection, name=_WRITER_NAME)

    def _over_rate_limit(self, excess: int, config: RoomsConfig) -> None:
        """A message over the rate limit: dropped, answered, and counted against the client."""
        if self.closing is not None:
            return  # closing already: what still arrives is dropped anyway
        self.counters.rate_limited += 1
        if excess > config.rate_limit_excess:
            self.begin_close(1008, "rate limit exceeded")
        else:
            limit = f"at most {config.rate_limit:g} messages per second"
            self.send_error(f"rate limit exceeded: {limit}")

    async def _drain(self, connection: Connection) -> None:
        # After closing for a protocol violation, read (and drop) until the peer's close
        # frame: closing a socket with unread input resets it, and the peer would lose
        # our close frame. The reader's deadline bounds this.
        with contextlib.suppress(
            ConnectionEnded, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            while True:
                with contextlib.suppress(ConnectionParked):  # closing: never parks
                    await connection.receive()

    # ---------------------------------------------------------------- writing

    async def _write_loop(self, connection: Connection) -> None:
        outbound = self.outbound
        batch: list[Frame] | None = None
        try:
            # The first wait is outside the writer's shield: a session never sent a
            # frame holds no cancel status of its own (its two sets are half a KiB).
            # Cancelled there, nothing was taken from the queue.
            batch = await outbound.get_batch(_WRITE_BATCH_BYTES)
        except trio.Cancelled:
            if self._cancelled_within():
                raise
            # The caller's cancellation: the reader closes with 1001 (see `_read_loop`),
            # and the writer writes on, shielded from here on.
        with self._writing_scope():
            try:
                if batch is None:
                    batch = await outbound.get_batch(_WRITE_BATCH_BYTES)
                while batch:
                    await connection.send(batch)
                    batch = await outbound.get_batch(_WRITE_BATCH_BYTES)
                if self._reads is Reads.PARKED:
                    return  # the queue is the parked session's (`OutboundQueue.park`)
                if self._send_close:
                    closing = self.closing
                    assert closing is not None
                    # Echo 1005 ("no code") as a plain normal closure.
                    code = 1000 if closing.code in (1005, 1006) else closing.code
                    await connection.close(code, closing.reason)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.begin_close(1006, "connection lost", send_close=False, by_peer=True)
        self._writer_finished()
        if self.closing is None:
            self.begin_close(1006, "write timeout", send_close=False)
        # Nothing more will be written: let the reader go if the peer never answers.
        deadline = trio.current_time() + self._config().close_timeout
        reader = self._reading_scope()
        reader.deadline = min(reader.deadline, deadline)
        if self._reads is Reads.HANDLER:
            # The handler is the one waiting on the peer (it is in no hook: one that
            # waits lends the reading back); a frame still arriving is handled
            # within this bound too.
            self._handler_scope.deadline = min(self._handler_scope.deadline, deadline)


# The names trio would give them, made once: not a string per session's task.
_READER_NAME = f"{__name__}.{SessionIO._read_loop.__qualname__}"  # pyright: ignore[reportPrivateUsage] - its own class
_WRITER_NAME = f"{__name__}.{SessionIO._write_loop.__qualname__}"  # pyright: ignore[reportPrivateUsage] - its own class
