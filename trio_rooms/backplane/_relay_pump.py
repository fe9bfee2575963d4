"""The client's side of a relay: its connection here, its session on the room's owner.

`relay_session` asks the owner to run the session (OPEN) and, once it is accepted,
pumps both ways in order: the client's messages to the owner, within the credit the
owner gives, and the owner's frames onto an `OutboundQueue` of this node's, which the
client's connection drains. That queue has the bounds and slow-consumer policy of a
local session's (1008), and the transport's keepalive pings and pongs go through it,
so the client cannot tell. The owner's frames keep their delivery policies there (a
coalescing key is the owner's number for it), and a client that counts frames is told
of what they drop, as the owner's own queue would tell it. What the policies did (drops,
coalesced frames, a slow consumer) is told the owner (REPORT) after each batch of frames
that changed it, before a CLOSE it leads to, so that the owner's statistics count it as
they count a local session's. When the owner is lost
(silent, or Redis is), `OwnerLost` is returned with the client's connection open: the
registry moves the session to the next owner (`MovableConnection`), which replays what
the client was not written yet, so the writer is stopped at once where the transport
finishes a write it gave up (`KeepsUnsent`, the embedded server's), else once it wrote
what came (within ``close_timeout``). A client already being closed is closed with 1012
(service restart) instead.

What it sent is kept until the owner confirms it (`Unconfirmed`): a relay that resumes a
lost one of the same owner sends first what that one's session had not taken.

The client's messages are read by its transport's watcher when it has one (`Watchable`,
the embedded server's): each is handed to the link in the watcher's call back, without a
task of the relay's waking for it (a readiness wait, an epoll change and a task switch
per message, else). What cannot be handed on at once (no credit, a full queue, the
client's end) goes back to the relay's reader task, which reads on by itself until it
can hand the reads back to the watcher.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable
from typing import Final, final

import trio

from .._core.config import RoomsConfig
from .._core.connection import Connection, ConnectionEnded, ConnectionParked, Watchable
from .._core.outbound import Frame, OutboundQueue, QueueOverflow
from .._core.ownership import OwnerLost
from .._core.reattach import MovableConnection
from .._core.request import ConnectRequest
from .._core.session_codecs import library_frame
from .._core.stats import RoomCounters
from .._errors import BackplaneError
from .._wire import SkippedFrame
from ..codec import WireFormat
from ._relay_end import RelayEnd
from ._relay_entries import (
    ACCEPTED,
    CLOSE,
    COUNTS,
    CREDIT,
    END,
    GONE,
    MESSAGE,
    MOVED,
    OPEN,
    REPORT,
    Entry,
    accepted,
    closing,
    counts,
    ending,
    gone,
    opening_body,
)
from ._relay_handover import Unconfirmed
from ._relay_link import RelayLink

__all__ = ["relay_session"]

#: Largest write handed to the client's transport at once (as a local session's).
_WRITE_BATCH_BYTES: Final = 256 * 1024
_LOST: Final = 1012


async def relay_session(
    link: RelayLink,
    owner: str,
    request: ConnectRequest,
    wire: WireFormat,
    connection: Connection,
    config: RoomsConfig,
    lapses: float = math.inf,
    resumes: Unconfirmed | None = None,
) -> tuple[tuple[int, str] | OwnerLost | None, Unconfirmed]:
    """Serve ``connection``'s session on node ``owner`` until it ends: its close, and
    what of the client's messages the owner did not confirm.

    Returns None, having touched nothing of ``connection``, if ``owner`` does not run
    it: the room is not its own (MOVED), or no answer came within ``handshake_timeout``
    or before ``lapses``, when its lease lapses if it does not renew it (a live owner
    answers long before; a dead one's room can be taken then); `OwnerLost`, having
    closed nothing, if the relay broke while the client was connected. Cancelled (this
    node shuts down), the client is closed with 1001 and the owner told, within
    ``close_timeout``.

    With ``resumes``, a lost relay to ``owner`` whose session this one resumes: the
    messages it sent that the owner says its session did not take are sent first.
    """
    end = link.new_end(owner)
    pump = _Pump(link, end, connection, config, resumes)
    link.add(end, pump)
    try:
        return await pump.run(request, wire, lapses), pump.unconfirmed
    finally:
        link.remove(end)


@final
class _Pump:
    """One relayed client on this node: an `Endpoint` of the link, and two loops."""

    def __init__(
        self,
        link: RelayLink,
        end: RelayEnd,
        connection: Connection,
        config: RoomsConfig,
        resumes: Unconfirmed | None,
    ) -> None:
        self._link = link
        self._end = end
        self._connection = connection
        self._config = config
        self._window = config.inbound_max_messages
        self._outbound = OutboundQueue(
            config.outbound_max_messages,
            config.outbound_max_bytes,
            config.slow_consumer_timeout,
            counters=RoomCounters(),  # its own: what they count since the last is REPORTed
        )
        #: The owner answered the OPEN (accepted, closed, moved), or the relay broke.
        self._answered = trio.Event()
        self._accepted = False
        #: What the client is closed with once the frames before it are written.
        self._close: tuple[int, str] | None = None
        #: How the session ended (END), or why the relay broke; then ``_done`` is set.
        self._result: tuple[int, str] | OwnerLost | None = None
        #: The client ended its side (or broke a rule): its relay is not to be moved.
        self._client_ended = False
        self._resumes = resumes
        #: Messages to hand to the link before the client's next: those the resumed
        #: relay's session did not take, then one read from the client.
        self._unsent: deque[str | bytes] = deque()
        #: Messages handed to the link that the owner's node read for no session (GONE).
        self._unread: list[str | bytes] = []
        #: Handed to the link, not yet confirmed taken by the owner's session.
        self.unconfirmed = Unconfirmed(end.peer, end.relay)
        self._done = trio.Event()
        self._sent = 0
        self._credit = self._window
        self._credited = trio.Event()
        #: What the queue's policies did, as last told the owner.
        self._reported = (0, 0, 0)
        #: The connection, while its transport may watch it (see `_watch`).
        self._watchable = connection if isinstance(connection, Watchable) else None
        #: While watched: the transport's read without waiting (the reader is parked).
        self._read_nowait: Callable[[], str | bytes] | None = None
        self._handed_back = trio.lowlevel.ParkingLot()
        #: What a read of the watched connection raised: the reader's to handle.
        self._raised: Exception | None = None

    # ------------------------------------------------------------------ endpoint

    def deliver(self, entry: Entry) -> None:
        try:
            self._deliver(entry.kind, entry.body)
        except ValueError as exc:
            self.broken(f"the room's node sent a bad {entry.kind!r} entry: {exc}")
        self._answered.set()

    def frames(self, frames: list[Frame]) -> None:
        # Once per relayed frame, or burst of them: no call here that may be spared.
        if not self._accepted:  # (accepted, the OPEN is answered: set once is enough)
            self._accepted = True
            self._answered.set()
        outbound = self._outbound
        try:
            for frame in frames:
                outbound.put_first(frame)
        except QueueOverflow:
            self._overflowed()
        counters = outbound.counters
        if (counters.dropped_oldest, counters.coalesced, counters.slow_consumers) != self._reported:
            self._report()

    def _deliver(self, kind: str, body: tuple[object, ...]) -> None:
        if kind == ACCEPTED:
            self._accepted = True
            self._resend(accepted(body))
        elif kind == COUNTS:
            wire = counts(body)
            self._outbound.marker = lambda skipped: library_frame(wire, SkippedFrame(skipped))
        elif kind == CREDIT and len(body) == 1 and isinstance(body[0], int):
            self._credit = max(self._credit, body[0] + self._window)
            self.unconfirmed.confirm(body[0])
            self._credited.set()
        elif kind == CLOSE:
            self._accepted = True
            code, reason, _, _ = closing(body)
            self._close_client(code, reason)
        elif kind == END:
            self._accepted = True
            ended = ending(body)
            self._close_client(*ended)
            self._finish(ended)
        elif kind == MOVED:
            self._finish(None)
        elif kind == GONE:
            since = gone(body)
            if since is None:
                self.broken("the room's node dropped the relay")
                return
            # It read them without a session for them (it restarted, or the session
            # ended there): the next owner handles them, never a loss. It answers each
            # entry so: the later GONEs find nothing more (and must not forget these).
            self._unread[:0] = self.unconfirmed.unread_from(since)
            self.broken(f"the room's node does not know the relay (entry {since} on)")

    def _resend(self, taken: int | None) -> None:
        """The session runs: queue what the resumed relay's session did not take."""
        resumes, self._resumes = self._resumes, None
        if resumes is None:
            return
        if taken is None:
            resumes.drop(f"node {self._end.peer!r} does not know relay {resumes.relay}")
            return
        self._unsent.extend(resumes.after(taken))

    def broken(self, why: str) -> None:
        if self._close is not None or self._client_ended:
            self._close_client(_LOST, "the room's node was lost")
            self._finish((_LOST, why))
        else:
            # The writer writes what came, then stops (or is stopped at once, see
            # `_moves_at_once`); the connection stays open.
            self._outbound.close()
            self._finish(OwnerLost(why))
        self._answered.set()

    def _overflowed(self) -> None:
        """The queue overflowed: the same policy as a local session's, the client is too
        slow (1008)."""
        self._outbound.counters.slow_consumer()
        self._report()
        self._close_client(1008, "slow consumer", discard=True)
        self._link.send_nowait(self._end, CLOSE, 1008, "slow consumer", True, False)

    def _report(self) -> None:
        """Tell the owner what the queue's policies did since the last REPORT, if anything."""
        counters = self._outbound.counters
        now = (counters.dropped_oldest, counters.coalesced, counters.slow_consumers)
        before, self._reported = self._reported, now
        if now != before:
            self._link.send_nowait(
                self._end, REPORT, *(count - last for count, last in zip(now, before, strict=True))
            )

    def _close_client(self, code: int, reason: str, *, discard: bool = False) -> None:
        if self._close is None:
            self._close = (code, reason)
            if discard:
                self._outbound.clear()
            self._outbound.close()

    def _finish(self, result: tuple[int, str] | OwnerLost | None) -> None:
        if not self._done.is_set():
            self._result = result
            self._done.set()

    # ------------------------------------------------------------------ running

    async def run(
        self, request: ConnectRequest, wire: WireFormat, lapses: float
    ) -> tuple[int, str] | OwnerLost | None:
        resumes = "" if self._resumes is None else self._resumes.relay
        body = opening_body(request, wire, self._window, resumes)
        self._link.send_nowait(self._end, OPEN, *body)
        deadline = min(trio.current_time() + self._config.handshake_timeout, lapses)
        with trio.move_on_at(deadline):
            await self._answered.wait()
        if not self._accepted:
            return None  # what the owner still sends for it is answered with GONE
        if self._resumes is not None:  # accepted without an ACCEPTED: not resumed there
            self._resend(None)
        self._connection.attach(self._outbound)
        try:
            async with trio.open_nursery() as nursery:
                written = trio.Event()
                nursery.start_soon(self._read)
                nursery.start_soon(self._write, written)
                await self._done.wait()
                if not self._moves_at_once():
                    with trio.move_on_after(self._config.close_timeout):
                        await written.wait()
                nursery.cancel_scope.cancel()
        except trio.Cancelled:
            self._link.send_nowait(self._end, CLOSE, 1001, "server shutting down", True, False)
            deadline = trio.current_time() + self._config.close_timeout
            with (
                trio.CancelScope(shield=True, deadline=deadline),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await self._connection.close(1001, "server shutting down")
            raise
        result = self._result
        if isinstance(result, OwnerLost) and (self._unread or self._unsent):
            return OwnerLost(result.why, (*self._unread, *self._unsent))
        return result

    def _moves_at_once(self) -> bool:
        """Whether the owner was lost and the writer need not finish: what it did not
        write, the next owner replays (`MovableConnection.moves_at_once`)."""
        connection = self._connection
        return (
            isinstance(self._result, OwnerLost)
            and isinstance(connection, MovableConnection)
            and connection.moves_at_once
        )

    async def _read(self) -> None:
        """Relay the client's messages and its end; after a protocol error, drain on."""
        try:
            await self._read_on()
        finally:
            self._unwatch()

    async def _read_on(self) -> None:
        connection, unsent, link, end = self._connection, self._unsent, self._link, self._end
        while True:
            if unsent and not self._client_ended:
                # `_send` without waiting when there is credit and room, as mostly: no
                # coroutine for each message (nor the link's for it).
                if self._sent < self._credit and link.try_message(end, unsent[0]):
                    self._sent += 1
                    self.unconfirmed.sent(unsent.popleft(), end.sent)
                elif not await self._send(unsent[0]):
                    return
                continue
            if self._watchable is not None and self._sent < self._credit and self._watch():
                # Read by the transport's watcher, which hands back what it cannot relay
                # without waiting (no credit, no room, the client's end).
                await self._handed_back.park()
                continue
            try:
                if self._raised is not None:
                    raised, self._raised = self._raised, None
                    raise raised
                message = await connection.receive()
            except ConnectionParked:
                continue  # the session is the owner's: it parks there, if anywhere
            except ConnectionEnded as ended:
                self._client_gone(ended.code, ended.reason, ended.by_peer, ended.send_close)
                if ended.by_peer:
                    return
                continue
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._client_gone(1006, "connection lost", True, False)
                return
            if self._client_ended:
                continue  # drained until its close frame: not relayed
            if not unsent and self._sent < self._credit and link.try_message(end, message):
                # The usual case, handed over at once (not through `unsent`: a turn of
                # this loop less per message).
                self._sent += 1
                self.unconfirmed.sent(message, end.sent)
                continue
            # Kept until handed over: if the owner is lost meanwhile, the next one gets it.
            unsent.append(message)

    def _watch(self) -> bool:
        """Have the transport watch the client's connection; whether it does.

        Not if the client ended its side, or a watched read left something to handle
        (`_raised`). A transport that cannot is not asked again.
        """
        watchable = self._watchable
        if watchable is None or self._client_ended or self._raised is not None:
            return False
        read = watchable.watch(self._readable)
        if read is None:
            self._watchable = None
            return False
        self._read_nowait = read
        self._readable()  # what came before the watch: the transport has it already
        return self._read_nowait is not None

    def _readable(self) -> None:
        """The watched client's input: relayed at once while credit and room allow.

        In the watcher's task (or the reader's, as the watch begins): whatever cannot be
        relayed without waiting is handed back to the reader, with the watch ended.
        """
        read = self._read_nowait
        if read is None:
            return  # unwatched already (an input reported with others)
        link, end, unconfirmed = self._link, self._end, self.unconfirmed
        try:
            while self._sent < self._credit and not self._client_ended:
                try:
                    message = read()
                except trio.WouldBlock:
                    return  # watched on
                if link.try_message(end, message):
                    self._sent += 1
                    unconfirmed.sent(message, end.sent)
                else:
                    self._unsent.append(message)  # kept until handed over, as in `_read`
                    break
        except Exception as exc:  # the client's end, or a bug: raised in the reader
            self._raised = exc
        self._unwatch()
        self._handed_back.unpark_all()

    def _unwatch(self) -> None:
        if self._read_nowait is not None:
            self._read_nowait = None
            assert self._watchable is not None
            self._watchable.unwatch()

    async def _send(self, message: str | bytes) -> bool:
        """Hand the first unsent ``message`` to the link within the credit, and keep it;
        False if the relay broke instead."""
        while self._sent >= self._credit:
            await self._credited.wait()
            self._credited = trio.Event()
        if self._client_ended:
            return True  # its CLOSE has left: nothing may follow it
        try:
            await self._link.send(self._end, MESSAGE, message)
        except BackplaneError as exc:
            self.broken(str(exc))
            return False
        self._sent += 1
        self._unsent.popleft()
        self.unconfirmed.sent(message, self._end.sent)
        return True

    async def _write(self, written: trio.Event) -> None:
        connection, outbound = self._connection, self._outbound
        try:
            while batch := await outbound.get_batch(_WRITE_BATCH_BYTES):
                await connection.send(batch)
            if self._close is not None:
                await connection.close(*self._close)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._client_gone(1006, "connection lost", True, False)
        finally:
            written.set()

    def _client_gone(self, code: int, reason: str, by_peer: bool, send_close: bool) -> None:
        """The client's connection ended: tell the owner once, and relay nothing after.

        Messages still waiting for credit are not sent: after its CLOSE they would go past
        the credit of a session that takes no more, and the owner would drop the relay as
        broken (GONE), which moved the gone client's session, resumed, and closed it twice.
        """
        if not self._client_ended:
            self._client_ended = True
            self._link.send_nowait(self._end, CLOSE, code, reason, by_peer, send_close)
