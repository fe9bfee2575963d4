"""The owner's side of a relay: a `Connection` whose client sits on another node.

The session runs here as any other (in the room's nursery, its handlers, data and gates
here, in ``room.sessions``); its connection reads what the client's node relays and adds
its frames and close to that node's stream. Its inbound is bounded by credit: the
client's node has at most ``window`` messages in flight, and is told (CREDIT) each time
the session has taken half of that, so a slow handler holds the client back as a local
one's socket would. A CREDIT goes with the link's next write (usually the reply's
frames), not in a write to Redis of its own, unless three quarters of the window were
taken since the last one left (`RelayedConnection._credit`).

Its frames leave the session's queue as a socket's would (the queue's ``direct`` write
when its writer is idle, else the writer's batches), once the output gate lets them, and
are grouped with the other relays' of the client's node (`FrameGroup`): one entry per
broadcast and node. Their delivery policies go with them, and so does the session's
counting of frames (COUNTS), so that the client's node drops and tells as the owner would;
what it dropped comes back (REPORT) and is counted in the room's statistics here.

A session whose relay is lost while this node lives ends as its client's leaving
(1006), and its relay is answered GONE instead of END: the client's node moves it back
here, and learns how many of its messages it took (`_relay_handover`).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, deque
from collections.abc import Callable
from typing import Final, final

import trio

from .._core.connection import ConnectionEnded
from .._core.outbound import BINARY, TEXT, Frame, OutboundQueue
from .._core.ownership import RelayHost
from .._errors import BackplaneError
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
    REPORT,
    Entry,
    VersionError,
    closing,
    opening,
    reported,
)
from ._relay_handover import ServedRelays
from ._relay_link import RelayLink

__all__ = ["OTHER_VERSION", "RelayedConnection", "serve_relayed"]

_logger = logging.getLogger("trio_rooms")

#: How a session is closed whose client's node and owner speak two versions of the relay
#: protocol: 1012 (service restart), as during a rolling upgrade it means "come back".
OTHER_VERSION: Final = (1012, "the room's node runs another version of trio_rooms")


@final
class RelayedConnection:
    """`Connection` of a session relayed to this node: an `Endpoint` of its `RelayLink`.

    ``holds()`` says whether this node still holds the room's lease: once it does not,
    nothing more is sent (a paused owner's late frames never reach its clients).

    A relay broken because this node lost Redis ends its session only once the link is
    back: what the session writes as it ends (its record) could not be stored before,
    and failing would restart the room of the clients that are still served here.
    """

    def __init__(
        self, link: RelayLink, end: RelayEnd, window: int, holds: Callable[[], bool]
    ) -> None:
        self._link = link
        self._end = end
        self._window = window
        #: CREDIT is given each time this many more were taken (`_credit`).
        self._half_window = max(window // 2, 1)
        self._holds = holds
        #: The client's messages not taken yet, in order.
        self._events: deque[str | bytes] = deque()
        #: The client's CLOSE, once it came: raised once the messages before it are taken
        #: (not queued behind them: no type test per message taken).
        self._closing: ConnectionEnded | None = None
        #: The session's task while `receive` waits for an event (parked: see `_wake`).
        self._receiver: trio.lowlevel.Task | None = None
        self._lost: str | None = None
        self._taken = self._credited = 0
        #: The last CREDIT known written (or the writer woken for), and `RelayLink.writes`
        #: when the last one was queued: see `receive`.
        self._credit_gone = 0
        self._credit_queued_at = 0
        self._close_sent = False
        #: The client's CLOSE came: what follows it is dropped (see `deliver`).
        self._client_closed = False
        #: The client's end, once `receive` raised it: raised again at once after.
        self._ended: ConnectionEnded | None = None
        self._outbound: OutboundQueue | None = None
        #: COUNTS was sent (the session's client counts frames).
        self._counted = False
        #: What ACCEPTED says: the messages the relay this one resumes took (-1: none).
        self.taken_before = -1
        #: `receive` raised the relay's loss: the session ended as its client's leaving.
        self.ended_by_loss = False

    @property
    def taken(self) -> int:
        """The client's messages the session has taken: final once the relay is broken."""
        return self._taken

    def supersede(self) -> None:
        """A newer relay of the client's node serves its client: take nothing more."""
        self._link.remove(self._end)
        self.broken("the client's node moved the session to a new relay")

    # ------------------------------------------------------------------ endpoint

    def deliver(self, entry: Entry) -> None:
        if self._lost is not None:
            return  # broken: what it had not taken is the client's node's to send again
        body = entry.body
        if self._client_closed and entry.kind in (MESSAGE, CLOSE, GONE):
            # Its client's node may hand over one message its reader read as its writer
            # found the client gone, after the CLOSE and past a credit already used: never
            # handled (the session ends at the CLOSE), and not a breach of the credit. Nor
            # is its GONE (its answer to what this node sent after its relay ended) a loss:
            # the session still ends with its client's code.
            return
        kind = entry.kind
        message = body[0] if kind == MESSAGE and len(body) == 1 else None
        # (Exact types, as msgpack makes them: no `str | bytes` union made per message.)
        if type(message) is str or type(message) is bytes:
            if len(self._events) >= self._window:
                self.broken("the client's node sent past its credit")
                return
            self._events.append(message)
            # `_wake`, inline: one call less per message (the hot path here).
            receiver = self._receiver
            if receiver is not None:
                self._receiver = None
                trio.lowlevel.reschedule(receiver)
            return
        if kind == CLOSE:
            self._client_closed = True
            try:
                code, reason, by_peer, send_close = closing(body)
            except ValueError as exc:
                self.broken(f"the client's node sent a bad CLOSE: {exc}")
                return
            self._closing = ConnectionEnded(code, reason, by_peer=by_peer, send_close=send_close)
        elif kind == GONE:
            self.broken("the client's node dropped the relay")
            return
        elif kind == REPORT:
            self._report(body)
            return
        else:
            _logger.warning("relays: dropped a %r entry the owner does not take", entry.kind)
            return
        self._wake()

    def _report(self, body: tuple[object, ...]) -> None:
        """What the client's node dropped: counted as this node's own queue's would be."""
        try:
            counts = reported(body)
        except ValueError as exc:
            self.broken(f"the client's node sent a bad REPORT: {exc}")
            return
        if self._outbound is not None:  # (frames, hence drops, come only once attached)
            self._outbound.counters.add(*counts)

    def frames(self, frames: list[Frame]) -> None:
        self.broken("the client's node sent frames")

    def broken(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
            self._events.clear()
            self._closing = None  # (a loss before the CLOSE was taken is the session's end)
            self._wake()

    def _wake(self) -> None:
        """Reschedule the session's task if `receive` waits: it takes the event itself.

        The task itself is parked, not an `Event` made and waited on per message (as
        trio's own primitives do): one wake-up per message, nothing allocated for it.
        """
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            trio.lowlevel.reschedule(receiver)

    def _abort(self, _: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        # Cancelled while parked: what arrives stays in `_events` for the next `receive`.
        self._receiver = None
        return trio.lowlevel.Abort.SUCCEEDED

    # ------------------------------------------------------------------ connection

    def attach(self, outbound: OutboundQueue) -> None:
        # The session is admitted to run: the client's node starts relaying its client.
        self._link.send_nowait(self._end, ACCEPTED, self.taken_before)
        self._outbound = outbound
        outbound.direct = self._direct
        outbound.forward = self._link.flush_nowait

    def _direct(self, frames: list[Frame]) -> bytes | None:
        """The queue's write without waiting: grouped at once, or left to the writer."""
        if self._lost is not None or not self._holds():
            return None  # the writer's send says why
        if not self._counted:  # (tested here: a call less per reply once counted)
            self._count()
        # A reply of one data frame, the common case, is its own data: a call less.
        if len(frames) != 1 or frames[0].opcode > BINARY:
            frames = _data(frames)
        if not self._link.put_frames(self._end, frames):
            return None
        return b""

    async def receive(self) -> str | bytes:
        while not self._events:
            if self._ended is not None:
                # Its client's side is over: a session that drains after a close its
                # client's node made (by_peer False) is not kept waiting for nothing.
                await trio.lowlevel.checkpoint()
                ended = self._ended
                raise ConnectionEnded(ended.code, ended.reason, by_peer=True, send_close=False)
            closing = self._closing
            if closing is not None:  # every message before it was taken
                self._ended = closing
                raise closing
            if self._lost is not None:
                await self._link.wait_connected()
                self.ended_by_loss = True
                raise ConnectionEnded(1006, self._lost, by_peer=True, send_close=False)
            if self._receiver is not None:
                await trio.lowlevel.checkpoint()
                raise trio.BusyResourceError("another task receives on this relay")
            self._receiver = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        item = self._events.popleft()
        self._taken += 1
        # `_credit` only when it has something to do: a call less for most messages.
        if self._taken - self._credited >= self._half_window or self._credit_gone != self._credited:
            self._credit()
        return item

    def _credit(self) -> None:
        """Give the client's node credit back, each half window taken.

        A CREDIT waits for the link's next write (`RelayLink.send_lazily`): the reply to
        what was taken usually follows a commit later, and the CREDIT goes with it, not
        in a write to Redis of its own. Once three quarters of the window were taken
        since the last CREDIT that left, the writer is woken for it: the client's node,
        which may send a whole window past the last CREDIT it got, is never held back
        waiting for a reply that does not come.
        """
        link, taken, window = self._link, self._taken, self._window
        if taken - self._credited >= self._half_window:
            self._credited = taken
            link.send_lazily(self._end, CREDIT, taken)
            self._credit_queued_at = link.writes
        if self._credit_gone != self._credited:
            if link.writes != self._credit_queued_at:
                self._credit_gone = self._credited  # a write took it
            elif taken - self._credit_gone >= window - window // 4:
                link.wake()
                self._credit_gone = self._credited

    async def send(self, frames: list[Frame]) -> None:
        if self._lost is not None or not self._holds():
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError(self._lost or "this node does not own the room now")
        self._count()
        try:
            await self._link.send_frames(self._end, _data(frames))
        except BackplaneError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    def _count(self) -> None:
        """Before its first frame: tell the client's node if its client counts frames.

        The session decides that (its queue's ``marker``) before it queues anything.
        """
        outbound = self._outbound
        if self._counted or outbound is None or outbound.marker is None:
            return
        self._counted = True
        # A library frame's opcode is its session's wire format's.
        wire = "json" if outbound.marker(0).opcode == TEXT else "msgpack"
        self._link.send_nowait(self._end, COUNTS, wire)

    async def close(self, code: int, reason: str) -> None:
        await trio.lowlevel.checkpoint()
        if not self._close_sent and self._lost is None and self._holds():
            self._close_sent = True
            self._link.send_nowait(self._end, CLOSE, code, reason, False, True)


def _data(frames: list[Frame]) -> list[Frame]:
    """The data frames of ``frames``: control frames are the client node's transport's."""
    for frame in frames:  # (a loop, not `all` of a generator: hot, once per reply)
        if frame.opcode > BINARY:
            return [frame for frame in frames if frame.opcode <= BINARY]
    return frames


async def serve_relayed(
    link: RelayLink,
    host: RelayHost,
    entry: Entry,
    holds: Callable[[str], bool],
    serving: Counter[str],
    served: ServedRelays,
    keep: float,
) -> None:
    """Run the session an OPEN asks for on ``host`` until it ends; then END its relay.

    If the room is not this node's, answer MOVED instead, having done nothing. While it
    runs, it is counted in ``serving`` under its room, and known to ``served`` (for
    ``keep`` seconds after it ended). An OPEN that resumes a lost relay's session waits
    for that session to end first (up to ``handshake_timeout``).
    """
    end = RelayEnd(entry.source, entry.relay, received=entry.seq)
    try:
        asked = opening(entry.body)
    except VersionError as exc:
        # Ended, not dropped: a node of any version closes its client with the END's code.
        _logger.warning("relays: refused an OPEN from node %r: %s", entry.source, exc)
        link.send_nowait(end, END, *OTHER_VERSION)
        return
    except ValueError as exc:
        _logger.warning("relays: refused an OPEN from node %r: %s", entry.source, exc)
        link.send_nowait(end, GONE)
        return
    room = asked.request.room
    # A partial, not a lambda: no frame of its own at each reply's check.
    connection = RelayedConnection(link, end, asked.window, functools.partial(holds, room))
    link.add(end, connection)
    serving[room] += 1
    ended: tuple[int, str] | None = (1001, "server shutting down")
    try:
        if asked.resumes:
            timeout = host.config.handshake_timeout
            taken = await served.supersede(entry.source, asked.resumes, timeout)
            connection.taken_before = -1 if taken is None else taken
        served.add(entry.source, entry.relay, connection)
        admitted = await host.admit_relayed(room, asked.request, asked.wire, connection)
        if admitted is None or isinstance(admitted, tuple):
            ended = admitted
        else:
            # Run here, in this task: each wake-up of the session resumes this coroutine
            # and the session's, not two more between them (as a local session's).
            await admitted.run()
            ended = admitted.ended_with()
    finally:
        served.ended(entry.source, entry.relay, keep)
        serving[room] -= 1
        if not serving[room]:
            del serving[room]
        link.remove(end)
        if ended is None:
            link.send_nowait(end, MOVED)
        elif connection.ended_by_loss and ended[0] == 1006:
            link.send_nowait(end, GONE)  # its client's node moves it back, if it can
        else:
            link.send_nowait(end, END, *ended)
