"""``SessionRunner``: what runs one session, apart from the `Session` its user wrote.

A `Session` is the user's façade: hooks, actions and typed attributes. Its runner owns
the rest: the connection side of the session (codecs, the bounded outbound queue, the
resume token), its close state, its setup (create or resume, replay, admission) and its
end (``on_close``, the record). What it runs on the connection are its bases': the read
and write loops and their reading hand-over (`session_io`), and the handler loop that
hands each frame to its hook (`dispatch`). The runner calls only the session's public
hooks; the session's actions call the runner.

The close state is one `Phase` and, once a close is decided, one `Closing`: who decided
it, with which code, and whether a close frame still has to be written.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, final

import trio

from .._errors import DecodeError, OwnershipLostError, SessionClosedError
from .._message import Message
from .._rpc import Request
from .._wire import (
    ErrorFrame,
    ResyncFrame,
    SessionFrame,
    SkippedFrame,
)
from ..codec import Codec, WireFormat
from . import tokens
from .config import RoomsConfig
from .connection import Connection
from .dispatch import SessionDispatch
from .durable import Claimed, DurableRecord
from .eager import run_eagerly
from .inbox import Inbox
from .outbound import BINARY, TEXT, Frame, OutboundQueue, QueueOverflow
from .parking import ParkedSession
from .reattach import seen_count
from .replay import LogEntry, ReplayPlan, transcode
from .request import ConnectRequest
from .runner_sides import RoomSide, SessionHooks
from .session_codecs import library_frame, outbound_check, session_codec
from .session_io import Closing, Reads
from .stats import Counters
from .storage import RecordWrite, ReplayCursor, SessionRecord
from .tags import SessionTags

__all__ = [
    "NO_DATA",
    "SESSION_TAKEN_OVER",
    "Closing",
    "Phase",
    "Reads",
    "SessionRunner",
]

_logger = logging.getLogger("trio_rooms")

#: Largest write the session's writer hands to the transport at once.
_WRITE_BATCH_BYTES = 256 * 1024

#: The close code of a connection whose session was resumed on another connection.
SESSION_TAKEN_OVER: Final = 4001

_DEFAULT_CONFIG = RoomsConfig()

#: What a runner counts into before `attach` gives it its rooms' counters.
_UNATTACHED: Final = Counters()

#: `SessionRunner.data` before ``create_data`` (or a resume) gave the session its data.
NO_DATA: Final[object] = object()


class Phase(enum.Enum):
    """Where a session is in its life; it only moves down this list."""

    #: Created; its data is being made or resumed, it is not in the room yet.
    SETUP = "setup"
    #: Admitted: in ``room.sessions``, its messages handled.
    OPEN = "open"
    #: A close was decided (by either side, or a failure); sends are dropped.
    CLOSING = "closing"
    #: Its tasks are done and ``on_close`` has run.
    ENDED = "ended"


@final
class SessionRunner(SessionDispatch["SessionRunner"]):
    """Runs one `Session`: made by the session itself, driven by its room."""

    # One runner per connection: slots keep an idle session small.
    __slots__ = (
        "_decoder",
        "_durable",
        "_encoder",
        "_joined_at",
        "_left_at",
        "_logs_after_close",
        "_parked",
        "_resumed_at",
        "_sent",
        "_setup_scope",
        "check",
        "closing",
        "counters",
        "data",
        "format",
        "id",
        "missed_broadcasts",
        "outbound",
        "phase",
        "replayed",
        "request",
        "room_side",
        "session",
        "tags",
    )

    def __init__(
        self,
        session: SessionHooks,
        *,
        data_type: object,
        takes_bytes: bool,
        responders: Mapping[type[Request[Any]], Callable[[Any, Any], Awaitable[Message]]],
    ) -> None:
        super().__init__(takes_bytes=takes_bytes, responders=responders)
        self.session = session
        self.id = tokens.session_id()
        #: The session's data; `Session.data` guards it until ``create_data`` returned.
        self.data: object = NO_DATA
        self._durable = DurableRecord(data_type, _DEFAULT_CONFIG.resume_window)
        self.room_side: RoomSide[SessionRunner] | None = None
        self.request: ConnectRequest | None = None
        self.format: WireFormat = "json"
        # The codecs (shared by the sessions of a class), not their bound methods:
        # two objects less per session. None until attached.
        self._encoder: Codec[Message] | None = None
        #: Checks a message before `Session.send` encodes it (None: not checked).
        self.check: Callable[[Message], None] | None = None
        self._decoder: Codec[Message] | None = None
        self.outbound = OutboundQueue(1, 1)
        self.counters = _UNATTACHED  # the rooms' own, once attached
        self.phase = Phase.SETUP
        self.closing: Closing | None = None
        #: Around its setup while it runs (`cut` ends it).
        self._setup_scope: trio.CancelScope | None = None
        # User frames sent for this session, what its client counts (`sent`): its own
        # and those of before it joined in `_sent`; the room's broadcasts since it
        # joined, but those it was left out of, are counted by the room, so that the
        # fan-out loop does not count per recipient.
        self._sent = 0
        self._joined_at: int | None = None
        #: Broadcasts of the room this session was left out of since it joined.
        self.missed_broadcasts = 0
        #: Frames the resume replayed (0: none, or a fresh session).
        self.replayed = 0
        #: Its tags, indexed by its room while it is in it.
        self.tags = SessionTags(
            self, _DEFAULT_CONFIG.max_tags_per_session, _DEFAULT_CONFIG.max_tag_length
        )
        #: The session's place in the replay log when it left the room.
        self._left_at: ReplayCursor | None = None
        #: It closed, and what it still sends is logged for its resumer (`send_closing`).
        self._logs_after_close = False
        #: Its place as stored when a client resumed it.
        self._resumed_at: ReplayCursor | None = None
        #: Made when it first parks (most sessions never do), kept for the next parks.
        self._parked: ParkedSession | None = None

    @property
    def sent(self) -> int:
        """User frames sent (or logged) for this session: what its client counts."""
        joined_at = self._joined_at
        if joined_at is None:
            return self._sent
        room = self.room_side
        assert room is not None
        return self._sent + room.broadcasts - joined_at - self.missed_broadcasts

    @sent.setter
    def sent(self, value: int) -> None:
        self._sent += value - self.sent

    def count_sent(self) -> None:
        """It was sent one of its room's tagged broadcasts (which the room does not count)."""
        self._sent += 1

    def joined(self, broadcasts: int) -> None:
        """It joined its room after ``broadcasts`` of the room's broadcasts."""
        self._joined_at = broadcasts
        self.missed_broadcasts = 0

    def left(self, broadcasts: int) -> None:
        """It left its room after ``broadcasts`` of them: its count stops there."""
        joined_at = self._joined_at
        if joined_at is not None:
            self._sent += broadcasts - joined_at - self.missed_broadcasts
            self._joined_at = None
            self.missed_broadcasts = 0

    # ---------------------------------------------------------- for the façade

    def encode(self, message: Message) -> bytes:
        """The payload of ``message`` in the session's wire format."""
        encoder = self._encoder
        if encoder is None:
            raise _unattached()
        return encoder.encode(message)

    def _decode(self, data: str | bytes) -> Message:
        decoder = self._decoder
        if decoder is None:
            raise _unattached()
        return decoder.decode(data)

    def send_user(self, opcode: int, payload: bytes, policy: int = 0, key: object = None) -> None:
        """Queue one of the session's own frames, logged for a replay if it can resume."""
        room = self.room_side
        if room is not None and room.log.active:
            if self._durable.token_hash:
                wire = "bytes" if opcode == BINARY and self.format == "json" else self.format
                room.log.send(wire, payload, self.id)
            self._sent += 1  # (`sent += 1` is this, through its getter twice)
        self.enqueue(Frame(opcode, payload, 0, policy, key))

    def send_closing(self, opcode: int, payload: bytes) -> None:
        """One of the session's own frames, sent after it started closing: never queued.

        If the session can resume and its client went away (closing by its peer: its
        handler still handles what the client had sent) or resumed it on another
        connection while a handler ran, the frame is logged, as the frames the room
        sends while it is away: the resume replays it. These are the answers to what
        the client sent last; dropped, the client could not tell those messages' effects
        from their loss. Once its resumer reads the log (`hand_over`), nothing more is
        logged: the resumer counts on from the log as it found it.
        """
        room = self.room_side
        if self._logs_after_close and room is not None:
            wire = "bytes" if opcode == BINARY and self.format == "json" else self.format
            room.log.send(wire, payload, self.id)
        else:
            self.counters.dropped += 1

    def hand_over(self, *, drains: bool) -> None:
        """A resume of this closed session reads the log now: it logs nothing more, and
        if it ``drains`` (still handles what its client had sent: it outlasted the
        resume's wait), what it has not handled yet is not handled (the resumed
        session's messages come next, in order)."""
        self._logs_after_close = False
        if drains and self.phase is not Phase.ENDED:
            self._handler_scope.cancel()
            _logger.warning(
                "session %s was resumed before its last events had ended: what they had"
                " not done yet is not done, what its client had sent and it had not"
                " handled yet is dropped",
                self.id,
            )

    def enqueue(self, frame: Frame) -> None:
        """Queue ``frame`` for the client; a queue past its bounds closes with 1008.

        It leaves only once the room's writes made before it are durable.
        """
        room = self.room_side
        if room is not None:
            frame.after = room.state.pending()
        try:
            if self.outbound.put_now(frame):
                self.counters.messages_out += 1
            else:
                self.counters.dropped += 1
        except QueueOverflow:
            self.overflow()

    def send_error(self, text: str) -> None:
        """Queue the library's ``{"error": text}`` frame."""
        self.enqueue(library_frame(self.format, ErrorFrame(text)))

    async def update(self) -> None:
        """`Session.update`: write the session's record, or learn it was taken over."""
        room = self.room_side
        if room is None or self.phase is Phase.SETUP:
            raise RuntimeError("update() needs an admitted session")
        if self._durable.taken_over or not await self._write_record(room):
            raise SessionClosedError(f"session {self.id} was resumed on another connection")

    async def close(self, code: int, reason: str) -> None:
        """`Session.close`: decide the close, wait until the close frame is written.

        From an event of the room, the frames it sent after a write leave only once that
        write is durable, which is when the event ends: its writes so far are sealed now
        so they can be, or waiting here would wait for itself. In a storage transaction
        they cannot be (it lands whole or not at all): the close then goes out after it,
        without waiting.
        """
        self.begin_close(code, reason)
        room = self.room_side
        if room is not None and room.gate.held_here():
            if room.gate.pinned:
                await trio.lowlevel.checkpoint()
                return
            room.state.seal()
        await self._wait_close_sent()

    # ------------------------------------------------------------ for the room

    def attach(
        self,
        room: RoomSide[SessionRunner],
        request: ConnectRequest,
        wire: WireFormat,
        connection: Connection,
    ) -> None:
        """Bind the session to its room and its connection, before `run`."""
        config = room.config
        self.room_side = room
        self.counters = room.counters
        self.request = request
        self._durable.resume_window = config.resume_window
        self._set_format(room, wire)
        self.outbound = OutboundQueue(
            config.outbound_max_messages,
            config.outbound_max_bytes,
            config.slow_consumer_timeout,
            room.state.durability,
        )
        self.outbound.counters = room.delivery_counters
        self.tags.max_tags = config.max_tags_per_session
        self.tags.max_length = config.max_tag_length
        self.outbound.parks = True
        connection.attach(self.outbound)

    def overflow(self) -> None:
        """The outbound queue is past its bounds: close with 1008, dropping what was queued."""
        self.counters.dropped += 1
        if self.closing is None:
            self.outbound.counters.slow_consumer()
        self.begin_close(1008, "slow consumer", discard=True)

    def begin_close(
        self,
        code: int,
        reason: str,
        *,
        send_close: bool = True,
        discard: bool = False,
        by_peer: bool = False,
    ) -> None:
        """Start ending the session; only the first call decides how.

        A later call can only say that the transport is gone (``send_close=False``):
        the writer then stops trying to write.
        """
        outbound = self.outbound
        if self.closing is not None:
            if not send_close:  # the transport is gone now: stop trying to write
                self._send_close = False
                outbound.clear()
                outbound.close()
                self._writing_scope().cancel()
            return
        admitted = self.phase is Phase.OPEN
        self.closing = Closing(code, reason, by_peer)
        if self.phase is not Phase.ENDED:
            self.phase = Phase.CLOSING
        self._send_close = send_close
        if self.room_side is not None:
            if admitted:
                # What it has been sent stops here: the log has the rest for its client.
                self._left_at = self.room_side.log.cursor(self.sent)
                if by_peer:
                    self._await_resume(drains=True)
            self.room_side.remove(self)
        if discard or not send_close:
            outbound.clear()
        outbound.close()
        timeout = self.room_side.config.close_timeout if self.room_side is not None else 0.0
        deadline = trio.current_time() + timeout
        self._writing_scope().deadline = deadline
        if not by_peer:
            # We initiated: give the peer until the deadline to answer our close frame,
            # and the running handler until then to return.
            self._reading_scope().deadline = deadline
            self._handler_scope.deadline = deadline
        # Nobody will read their replies: request handlers get until the deadline too.
        for scope in self._request_scopes or ():
            scope.deadline = deadline

    def _await_resume(self, *, drains: bool) -> None:
        """It closed while it may still send (its handler runs): until its resumer reads
        the log, it logs what it sends (`RoomRunner.going`)."""
        if self._durable.token_hash and self.room_side is not None:
            self._logs_after_close = self._left_at is not None  # (the room logs)
            self.room_side.going(self, drains=drains)

    def take_over(self) -> None:
        """This session was resumed on another connection: its record is not ours anymore."""
        self._durable.taken_over = True
        was_open = self.closing is None and self.phase is Phase.OPEN
        self.begin_close(SESSION_TAKEN_OVER, "session resumed elsewhere")
        if was_open:
            self._await_resume(drains=False)  # what its running event sends is its resumer's

    def cut(self) -> None:
        """Its room stops hard (its nursery was cancelled): end every task of it now."""
        self.begin_close(1006, "cancelled", send_close=False)
        for scope in (self._setup_scope, self._handler_scope, self._reading_scope()):
            if scope is not None:
                scope.cancel()

    async def run(
        self, connection: Connection, room: RoomSide[SessionRunner]
    ) -> tuple[int, str] | ParkedSession:
        """Serve the session until it ends (its code, `ended_with`), in the caller's task.

        Cancelling the caller closes the session with 1001 (see `_write_loop`); it
        returns once that close is through, its queue flushed, within ``close_timeout``
        (a hook still running gets as long, then ``on_close`` as long). The room ends
        what is left when it stops (`cut`).

        The connection may ask it to park (`ConnectionParked`): if the handler waits for
        the next frame with nothing queued, no request running and its writer idle, its
        tasks end and this returns the `ParkedSession` to run it on later (here again,
        without its admission: `ParkedSession.resume`).
        """
        config = room.config
        inbox = Inbox(config.inbound_max_messages)
        resumed = self.phase is not Phase.SETUP
        if resumed:
            self._unpark()
        ended = True
        try:  # whatever happens, the room is told last (`RoomRunner.session_ended`)
            self._rate_limited = config.rate_limit is not None
            try:
                async with trio.open_nursery() as nursery:
                    # Its reader and writer are started there when first needed.
                    self._nursery, self._connection, self._inbox = nursery, connection, inbox
                    self._reader_started = False
                    self.outbound.start_lazily(self._start_writer)
                    try:
                        admitted = resumed
                        if not resumed:
                            # Shielded like the handler, but with no deadline of a close:
                            # setup (create_data, on_connect) is not cut short, only by
                            # `cut`. The reader reads meanwhile if it waits.
                            with trio.CancelScope(shield=True) as self._setup_scope:
                                admitted = await run_eagerly(self._admit(room), self._lend_reading)
                            self._setup_scope = None
                        if admitted:
                            try:
                                with self._handler_scope:
                                    await self._handle_all(connection, inbox)
                            finally:
                                if self._reads is not Reads.PARKED:
                                    await self._finish()
                        else:
                            # Closing: the reader reads (and drops) until the peer answers.
                            self._lend_reading()
                    finally:
                        inbox.close_receive()
                        if self._reads is not Reads.PARKED:
                            self.handler_ended()
            finally:
                # Nothing is started any more (a failure may still close the queue).
                self._nursery = self._connection = self._inbox = None
            ended = self._reads is not Reads.PARKED
        except Exception:
            # A transport or library failure ends this session only, never the room.
            _logger.exception("session %s of room %r failed", self.id, room.name)
            self.begin_close(1011, "internal error", send_close=False)
            if self._reads is Reads.PARKED:  # failed while parking: it ends here
                self._unpark()
                self.handler_ended()
        finally:
            if ended:
                self.phase = Phase.ENDED
                self._writer_finished()
                closing = self.closing
                room.counters.closes[closing.code if closing is not None else 1006] += 1
                room.counters.changed()
                room.session_ended(self)
        if ended:
            return self.ended_with()
        assert self._parked is not None
        return self._parked

    def run_on(self, connection: Connection) -> Awaitable[tuple[int, str] | ParkedSession]:
        """`run` the parked session on, in the room it parked in (`ParkedSession.resume`).

        The run itself, for the caller to await: no coroutine of its own per session.
        """
        room = self.room_side
        assert room is not None
        return self.run(connection, room)

    def _park(self, connection: Connection) -> bool:
        """The connection asks to park: if the session is quiescent, its tasks end now.

        Quiescent: admitted and not closing, the handler waiting for the next frame (the
        caller knows), no request running and the writer waiting on an empty queue. Its
        state stays: the queue, the session, its record.
        """
        if (
            self.phase is not Phase.OPEN
            or self.closing is not None
            or self._in_flight
            or not self.outbound.idle
        ):
            return False
        parked = self._parked
        if parked is None:
            parked = self._parked = ParkedSession(self, connection, self.counters)
        parked.parked()
        self._reads = Reads.PARKED
        self._wake_reader()
        self.outbound.park(parked.needed)
        return True  # counted once its transport holds it (`ParkedSession.held`)

    def _unpark(self) -> None:
        """Run on after a park: fresh scopes, as cancelled and as bounded as the old ones."""
        self._reads = Reads.HANDLER
        # Those not made yet (no reader or writer ran, no close) are made when needed.
        if self._reader_scope is not None:
            self._reader_scope = _renewed(self._reader_scope)
        if self._writer_scope is not None:
            self._writer_scope = _renewed(self._writer_scope)
        self._handler_scope = _renewed(self._handler_scope)
        self.outbound.unpark()

    def ended_with(self) -> tuple[int, str]:
        """The code and reason the session ended with (after `run`)."""
        closing = self.closing
        return (closing.code, closing.reason) if closing is not None else (1006, "")

    # ---------------------------------------------------------------- setup

    async def _admit(self, room: RoomSide[SessionRunner]) -> bool:
        """Resume or create the session, persist it, and add it to the room."""
        request = self.request
        assert request is not None
        resume = request.query.get("resume")  # None: not resumable; "": new; else a token
        claimed: Claimed | None = None
        try:
            claimed = await self._resume(room, resume) if resume else None
            issued = claimed.issued if claimed is not None else None
            resumed = claimed is not None
            if not resumed:
                async with room.gate:
                    self.data = await self.session.create_data(request)
                if resume is not None:
                    issued = self._durable.issue(self.id)
        except OwnershipLostError:
            # Another node owns the room now (the room stops here): resume there.
            self.begin_close(1012, "the room moved to another node")
            return False
        except Exception:
            _logger.exception("session setup failed in room %r", room.name)
            self.begin_close(1011, "session setup failed")
            return False
        if self.closing is not None:
            await self._give_back(room, claimed)
            return False  # the peer left during setup
        if room.stopping:
            self.begin_close(1001, "server shutting down")
            await self._give_back(room, claimed)
            return False
        await room.gate.acquire()
        try:
            # The log is read, the missed frames queued and the session added in one hold
            # of the gate: nothing the room sends comes between them.
            try:
                if resumed:
                    room.hand_over(self.id)  # what it sends is counted from here on
                plan, frames = await self._replay(room, resumed)
                if not resumed and self._durable.token_hash:
                    # Not waited for: the frames sent after it (its token first) wait
                    # instead. Saved here, so that its place in the log is where it joins.
                    # A session that cannot resume is stored from its first `update()`
                    # only: nothing reads its record back (no token matches it), and a
                    # connection that never calls it costs no write and no delete.
                    room.state.save_record(RecordWrite(record=self._record(room)))
            except Exception:
                _logger.exception("session setup failed in room %r", room.name)
                self.begin_close(1011, "session setup failed")
                await self._give_back(room, claimed)
                return False
            if self.closing is not None:
                await self._give_back(room, claimed)
                return False  # the peer left while the log was read
            if issued is not None:
                # The first frame a resumable client gets, before anything the room sends.
                replayed = None if plan is None else len(frames)
                info = SessionFrame(self.id, issued.token, resumed, replayed)
                self.enqueue(library_frame(self.format, info))
            self.outbound.put_paced(frames, room.state.pending())
            resync = plan.resync if plan is not None else None
            if resync is not None:
                self.enqueue(library_frame(self.format, ResyncFrame(resync)))
            room.add(self)
            self.phase = Phase.OPEN
            try:
                if resync is not None:
                    await self.session.on_resync()
                if resumed:
                    await self.session.on_resume()
                await self.session.on_connect()
            except Exception as exc:
                await self._report(exc)
                self.begin_close(1011, "session setup failed")
        finally:
            room.gate.release()
        return True

    async def _replay(
        self, room: RoomSide[SessionRunner], resumed: bool
    ) -> tuple[ReplayPlan | None, list[Frame]]:
        """What to replay to this client: None if it does not count frames (no ``seen``)."""
        log = room.log
        if self._durable.token_hash:
            log.activate()  # a resumable session: the room logs from now on
        seen = self.request.query.get("seen") if self.request is not None else None
        if seen is None or log.limits is None or not self._durable.token_hash:
            return None, []
        # Its client counts frames: it is told of those a delivery policy drops.
        wire = self.format
        self.outbound.marker = lambda skipped: library_frame(wire, SkippedFrame(skipped))
        if not resumed:
            return ReplayPlan(), []
        count = seen_count(seen)
        if count is None:
            plan = ReplayPlan(resync=f"seen must be a count of frames, got {seen[:40]!r}")
        else:
            plan = await log.plan(self.id, self._resumed_at, count)
        if plan.resync is None:
            try:
                frames = [self._replay_frame(entry) for entry in plan.entries]
            except DecodeError as exc:
                plan = ReplayPlan(resync=f"a missed frame cannot be replayed: {exc}")
            else:
                self.sent = (count or 0) + len(frames)
                self.replayed = len(frames)
                return plan, frames
        # Its client counts on from what it had seen, and so does the session; its record
        # says so before anything more is sent (the output gate), so that a crash cannot
        # leave it pointing before the gap.
        self.sent = count or 0
        room.state.save_record(
            RecordWrite(record=self._record(room), expected_token_hash=self._durable.token_hash)
        )
        return plan, []

    def _replay_frame(self, entry: LogEntry) -> Frame:
        room = self.room_side
        assert room is not None
        if entry.wire == "bytes":
            return Frame(BINARY, entry.payload)
        payload = transcode(entry, self.format, room.decode_logged, self.encode)
        return Frame(TEXT if self.format == "json" else BINARY, payload)

    async def _give_back(self, room: RoomSide[SessionRunner], claimed: Claimed | None) -> None:
        """A resume that ends before its ``$session`` frame: its client keeps its token."""
        if claimed is not None:
            await self._durable.give_back(room.state, claimed)

    async def _resume(self, room: RoomSide[SessionRunner], token: str) -> Claimed | None:
        """Take over the session ``token`` names and spend the token; None if it is not valid.

        Of connections racing with one token, exactly one gets the session (see
        `DurableRecord.claim`); the others get None, and a fresh session. A session
        whose client went and that still handles what it had sent is waited for first.
        """
        parts = tokens.split(token)
        if parts is not None:
            await room.wait_gone(parts[0])
        claimed = await self._durable.claim(room.state, token)
        if claimed is None:
            return None
        # The data as it was when the token was spent: later writes of the session it
        # came from are refused, since they expect the hash this one just replaced.
        self.data = claimed.data
        self.id = claimed.session_id
        self._resumed_at = claimed.replay
        if claimed.wire != self.format and claimed.wire in ("json", "msgpack"):
            self._set_format(room, "json" if claimed.wire == "json" else "msgpack")
        previous = room.runners.get(claimed.session_id)
        if previous is not None:  # still connected here: end it now, not at its next write
            previous.take_over()
        # It, or one that went while the token was claimed: its handler may still send.
        await room.wait_gone(claimed.session_id)
        return claimed

    def _set_format(self, room: RoomSide[SessionRunner], wire: WireFormat) -> None:
        client_classes, server_classes = self.session.message_classes()
        config = room.config
        options = (wire, config.camel_case, config.forbid_extra_keys)
        self.format = wire
        self._encoder = session_codec(server_classes, *options)
        self._decoder = session_codec(client_classes, *options)
        if config.check_outbound:
            self.check = outbound_check(server_classes, config.camel_case)

    # --------------------------------------------------------------- records

    async def _write_record(self, room: RoomSide[SessionRunner]) -> bool:
        """Store this session's record; False (and closing with 4001) if it was taken over."""
        if await self._durable.write(room.state, self._record(room)):
            return True
        self.take_over()
        return False

    def refresh_record(self, *, longer: float) -> None:
        """Store the record of a live resumable session as it is now: not waited for.

        So that a crash leaves a record that still resumes it (see `RecordRefresh`): its
        place in the log now, and an expiry ``longer`` past a resume window from now. The
        data is stored as it is, as at the session's close. Written only while the stored
        record holds its token (a session resumed elsewhere keeps what its resumer stored).
        """
        room = self.room_side
        durable = self._durable
        if (
            room is None
            or self.phase is not Phase.OPEN
            or not durable.token_hash
            or durable.taken_over
            or room.state.failed is not None
        ):
            return
        try:
            record = durable.record(
                room.name, self.id, self.data, self.format, room.log.cursor(self.sent), longer
            )
        except Exception:  # the user's data no longer converts: its update() says so too
            _logger.exception("the record of session %s could not be refreshed", self.id)
            return
        write = RecordWrite(record=record, expected_token_hash=durable.token_hash)
        room.state.save_record(write)

    def _record(self, room: RoomSide[SessionRunner]) -> SessionRecord:
        cursor = self._left_at if self.closing is not None else room.log.cursor(self.sent)
        return self._durable.record(room.name, self.id, self.data, self.format, cursor)

    def _config(self) -> RoomsConfig:
        return self.room_side.config if self.room_side is not None else _DEFAULT_CONFIG

    async def _guarded(self, hook: Awaitable[object]) -> None:
        try:
            await hook
        except Exception as exc:
            await self._report(exc)

    async def _report(self, error: Exception) -> None:
        self.counters.errors += 1
        try:
            await self.session.on_error(error)
        except Exception:
            _logger.exception("on_error raised in session %s", self.id)

    async def _finish(self) -> None:
        if self.closing is None:  # cancelled from outside (hard shutdown)
            self.begin_close(1006, "cancelled", send_close=False)
        room = self.room_side
        closing = self.closing
        assert room is not None
        assert closing is not None
        timeout = room.config.close_timeout
        with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout) as scope:
            await self._guarded(self._on_close(room, closing))
        if scope.cancelled_caught:
            _logger.warning(
                "on_close of session %s in room %r did not end within close_timeout",
                self.id,
                room.name,
            )
        # A deadline of its own: a slow on_close must not leave the record behind.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout):
            await self._guarded(self._persist_at_close(room))

    async def _on_close(self, room: RoomSide[SessionRunner], closing: Closing) -> None:
        async with room.gate:
            await self.session.on_close(closing.code, closing.reason)

    async def _persist_at_close(self, room: RoomSide[SessionRunner]) -> None:
        if self._durable.taken_over:
            return  # its record belongs to the connection that resumed it
        if room.state.failed is not None:
            return  # the room is restarting: its last stored record stands
        if self._durable.token_hash:
            # Resumable: keep the latest data and restart the resume window from now,
            # unless it was resumed elsewhere meanwhile (then nothing is written).
            await self._write_record(room)
        elif self._durable.written:
            await room.state.flush()  # its last `update()` is in, to delete
            try:
                await room.storage.delete_session(room.name, self.id, fence=room.state.fence)
            except OwnershipLostError as exc:
                room.state.refused(exc)  # another node owns the room: it stops here


def _renewed(scope: trio.CancelScope) -> trio.CancelScope:
    """A scope to enter in place of ``scope`` (a scope is entered once), in its state."""
    renewed = trio.CancelScope(deadline=scope.deadline, shield=scope.shield)
    if scope.cancel_called:
        renewed.cancel()
    return renewed


def _unattached() -> RuntimeError:
    return RuntimeError("this session has not been attached to a connection")
