"""``MovableConnection``: a client's connection that outlives the session serving it.

With a cluster, a client of a node that does not own its room is served through the
owner (`Cluster.relay`). When the owner is lost (killed, paused, cut off from Redis)
the client's node still holds the socket, so it moves the session to the next owner
(another node, or itself) without the client reconnecting: it resumes the session as a
client would, ``resume=TOKEN&seen=N``, with the token of the session's latest
``$session`` frame and ``N`` the user frames written to the client so far. The new
owner runs ``on_resume`` with the session's stored data and replays the frames the
client did not get (those the lost owner had logged but not delivered).

What the client sees, so that its own later resumes work:

- It asked to resume (``?resume=``): the ``$session`` frame of every move is passed on.
  Its ``id`` is the session's, ``resumed`` is true and its ``token`` is the new one (the
  move spent the old one), so the client must keep that token: the Python and
  TypeScript clients take a mid-connection ``$session`` of their own session as a new
  token. ``$resync`` is passed on too; ``replayed`` only if it counts (``&seen=``).
- It did not: its session is opened resumable all the same (``resume=&seen=0``), and
  the library frames it did not ask for (``$session``, ``$resync``, ``$skipped``) are
  not passed on; it sees the room's messages only, in order, with no gap.

Counting follows the clients': a frame counts unless it is a reply (``$rid``) or a
library frame, and ``$skipped`` counts its frames. No I/O here but the connection's own.

Between two owners nobody else reads the client, so the registry waits with
`wait_left`: what the client sends meanwhile is kept for the next owner, and a client
that leaves is seen at once, so its session is not moved: moving it would spend the
token the client holds and give the new one to a socket that is gone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from types import CoroutineType
from typing import Final, final
from urllib.parse import parse_qsl, urlencode

import attrs
import trio

from .._errors import DecodeError
from .._wire import (
    ResyncFrame,
    SessionFrame,
    SkippedFrame,
    encode_library_frame,
    parse_library_frame,
    split_rid,
)
from ..codec import WireFormat
from .connection import Connection, ConnectionEnded, ConnectionParked, KeepsUnsent, Watchable
from .outbound import BINARY, TEXT, Frame, OutboundQueue
from .request import ConnectRequest

__all__ = ["MovableConnection", "seen_count"]

#: How every user message a codec encodes begins (JSON; msgpack after its map header).
_JSON_MESSAGE: Final = b'{"type"'
_MSGPACK_TYPE: Final = b"\xa4type"
_PARAMS: Final = ("resume", "seen")


@final
class MovableConnection:
    """The client's `Connection`, seen through by the sessions that serve it in turn.

    Args:
        connection: The client's connection (its transport's).
        request: The client's handshake, as it asked.
        read_ahead: Messages `wait_left` keeps at most (the inbound queue's bound).
    """

    def __init__(
        self, connection: Connection, request: ConnectRequest, read_ahead: int = 32
    ) -> None:
        self._connection = connection
        self._request = request
        self._read_ahead = read_ahead
        #: How the client left while no session served it.
        self._left: ConnectionEnded | None = None
        query = request.query
        #: What the client asked for: what it is shown of the library's frames.
        self._asked_resume = "resume" in query
        self._asked_seen = self._asked_resume and "seen" in query
        # A client that resumes by token without counting cannot be replayed to: its
        # count on this connection is not the session's, so a move resumes it unreplayed.
        # A new session counts from 0, whoever asked for it (one whose token did not
        # resume too: see `_session_frame`).
        self._counting = self._asked_seen or query.get("resume", "") == ""
        seen = seen_count(query.get("seen", "0")) if self._asked_seen else 0
        #: User frames the client has been written (or told were skipped), as it counts.
        #: A ``seen`` that is no count is the owner's to refuse ($resync): it counts from 0.
        self.count = seen or 0
        #: The session's latest ``$session`` frame: what resumes it on the next owner.
        self._session: SessionFrame | None = None
        self._unread: deque[str | bytes] = deque()
        #: A move that did not resume the session: the client was closed (1012).
        self.failed = False
        #: A write to the client was cancelled part way (`send`): nothing more may go.
        self._cut = False
        #: The transport's write without waiting (see `_write_direct`).
        self._direct: Callable[[list[Frame]], bytes | None] | None = None
        #: The transport's connection, if it can be watched (`Watchable`).
        self._watchable = connection if isinstance(connection, Watchable) else None
        #: A write given up part way is finished by the next one (`KeepsUnsent`).
        self._keeps_unsent = isinstance(connection, KeepsUnsent) and connection.keeps_unsent

    # ------------------------------------------------------------------ moving

    @property
    def movable(self) -> bool:
        """Whether the session can be resumed elsewhere: its token is known, and no
        write to the client was cut (a frame after it would land inside a frame)."""
        return self._session is not None and not self.failed and not self._cut

    @property
    def moves_at_once(self) -> bool:
        """Whether a lost owner's frames not yet written need not be: the move's replay
        sends them again (the client counts), and a write given up part way is finished
        before anything else (`KeepsUnsent`), so the session can move without waiting
        for a client slow to take them."""
        return self._keeps_unsent and self._counting and self.movable

    def request(self) -> ConnectRequest:
        """The handshake to open the session with on its owner, now.

        Before any session was opened: the client's, made resumable (and counting)
        if it was not. Afterwards: a resume of the session with its latest token.
        """
        pairs = parse_qsl(self._request.query_string, keep_blank_values=True)
        kept = [(name, value) for name, value in pairs if name not in _PARAMS]
        session = self._session
        if session is not None:
            resume = session.token
        elif self._asked_seen or not self._counting:
            return self._request  # resumable as asked, and counting if it can
        else:
            resume = self._request.query.get("resume", "")
        kept.append(("resume", resume))
        if self._counting:
            kept.append(("seen", str(self.count)))
        return attrs.evolve(self._request, query_string=urlencode(kept))

    def unread(self, messages: Iterable[str | bytes]) -> None:
        """Messages read from the client that the lost owner never got: read them first."""
        self._unread.extendleft(reversed(tuple(messages)))

    async def wait_left(self, seconds: float) -> ConnectionEnded | None:
        """Wait ``seconds`` while no session serves the client; how it left, if it did.

        What the client sends meanwhile is kept for the next session (up to
        ``read_ahead`` messages; beyond, it is not read, as a full inbound queue's).
        Cancellation loses nothing: a connection's ``receive`` is cancel-safe.
        """
        with trio.move_on_after(seconds):
            while self._left is None and len(self._unread) < self._read_ahead:
                try:
                    self._unread.append(await self._connection.receive())
                except ConnectionParked:
                    continue  # no session here to park: the client is read on
                except ConnectionEnded as ended:
                    self._left = ended
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._left = ConnectionEnded(
                        1006, "connection lost", by_peer=True, send_close=False
                    )
            if self._left is None:
                await trio.sleep_forever()
        return self._left

    # ------------------------------------------------------------------ connection

    def attach(self, outbound: OutboundQueue) -> None:
        self._connection.attach(outbound)
        self._direct = outbound.direct
        if self._direct is not None:
            outbound.direct = self._write_direct

    def _write_direct(self, frames: list[Frame]) -> bytes | None:
        """The transport's write without waiting, for frames that are counted alone.

        A relay's fan-out is written so, as a local session's, instead of waking its
        writer: user messages (not replies) and control frames. Any other frame (a
        library frame, a reply) goes through `send`, where it is looked at.
        """
        direct = self._direct
        if direct is None or self.failed or self._cut:
            return None
        counted = 0
        for frame in frames:
            opcode = frame.opcode
            payload = frame.payload
            if opcode == TEXT:
                # `_looks_like_a_message`'s JSON case inline: every relayed frame comes here.
                if not payload.startswith(_JSON_MESSAGE):
                    return None
            elif opcode != BINARY:
                continue  # a control frame of the transport's
            elif not _looks_like_a_message(opcode, payload):
                return None
            if b"$rid" in payload:
                return None
            counted += 1
        rest = direct(frames)
        if rest is not None:
            self.count += counted
        return rest

    def receive(self) -> CoroutineType[object, object, str | bytes]:
        # The transport's own coroutine when nothing is kept here, as mostly: the relay's
        # every read of the client is then one coroutine deep, not two (a frame less to
        # resume at each message).
        if self._unread or self._left is not None:
            return self._kept()
        return self._connection.receive()

    def watch(self, readable: Callable[[], None]) -> Callable[[], str | bytes] | None:
        """The transport's watch (`Watchable`): its read without waiting, as it is
        when nothing is kept here (as mostly: a call less per message)."""
        watchable = self._watchable
        if watchable is None:
            return None
        read = watchable.watch(readable)
        if read is None or not (self._unread or self._left is not None):
            return read
        return partial(self._kept_nowait, read)

    def unwatch(self) -> None:
        if self._watchable is not None:
            self._watchable.unwatch()

    def _kept_nowait(self, read: Callable[[], str | bytes]) -> str | bytes:
        """What `wait_left` kept first, then ``read``'s (the transport's)."""
        if self._unread:
            return self._unread.popleft()
        if self._left is not None:
            raise self._left
        return read()

    async def _kept(self) -> str | bytes:
        """What `wait_left` kept: the next unread message, or how the client left."""
        await trio.lowlevel.checkpoint()
        if self._unread:
            return self._unread.popleft()
        assert self._left is not None
        raise self._left

    async def send(self, frames: list[Frame]) -> None:
        if self.failed or self._cut:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("the session could not be moved")
        kept = [shown for frame in frames if (shown := self._pass(frame)) is not None]
        if self.failed:
            await self._connection.close(1012, "the session could not be moved")
            raise trio.BrokenResourceError("the session could not be moved")
        if kept:
            try:
                await self._connection.send(kept)
            except trio.Cancelled:
                # Given up part way (the relay's writer, its owner lost). A transport that
                # keeps what it did not write finishes these frames first at the next
                # write: they are the client's, as counted. Else the client may hold part
                # of a frame, and the count includes frames it never got whole: nothing
                # more is written, and the session is not moved (its client resumes).
                self._cut = not self._keeps_unsent
                raise

    async def close(self, code: int, reason: str) -> None:
        if self._cut:
            # A close frame would land inside the cut one: the transport ends the TCP
            # connection instead, once its task returns (the client sees 1006).
            await trio.lowlevel.checkpoint()
            return
        await self._connection.close(code, reason)

    # ------------------------------------------------------------------ frames

    def _pass(self, frame: Frame) -> Frame | None:
        """Count ``frame`` as the client will; what of it the client is shown (None: nothing)."""
        opcode, payload = frame.opcode, frame.payload
        if opcode not in (TEXT, BINARY):
            return frame  # a control frame of the transport's
        if _looks_like_a_message(opcode, payload):
            if b"$rid" not in payload or split_rid(_data(opcode, payload)) is None:
                self.count += 1
            return frame  # a reply is not counted
        data = _data(opcode, payload)
        if split_rid(data) is not None:
            return frame
        try:
            library = parse_library_frame(data)
        except DecodeError:
            return frame  # malformed: the client reports it, and does not count it
        if library is None:
            self.count += 1  # not the room's message, but the client counts it
            return frame
        if isinstance(library, SessionFrame):
            return self._session_frame(frame, library)
        if isinstance(library, SkippedFrame):
            self.count += library.count
            return frame if self._asked_seen else None
        if isinstance(library, ResyncFrame):
            return frame if self._asked_resume else None
        return frame  # an error: the client's to see

    def _session_frame(self, frame: Frame, session: SessionFrame) -> Frame | None:
        previous = self._session
        if previous is not None and (session.id != previous.id or not session.resumed):
            # The move found no session to resume (its record expired): the client's
            # session is gone, and what the fresh one sends is not for this client.
            self.failed = True
            return None
        if previous is None and not session.resumed:
            # Its token did not resume (dead, spent, another room's): a new session, whose
            # count starts at 0 whatever ``seen`` said, as the client's own does.
            self.count = 0
            self._counting = True
        self._session = session
        if not self._asked_resume:
            return None
        if self._asked_seen or session.replayed is None:
            return frame
        wire: WireFormat = "json" if frame.opcode == TEXT else "msgpack"
        shown = attrs.evolve(session, replayed=None)  # it does not count: no replay
        return Frame(frame.opcode, encode_library_frame(wire, shown))


def seen_count(seen: str) -> int | None:
    """``seen`` as a count of frames (decimal digits, below 10**18), or None.

    The owner and a relaying node read a client's ``seen`` with this one rule: ``"²"``
    is a digit to `str.isdigit` but no number to `int`, 5,000 digits are past `int`'s
    string limit, and neither may fail the node that relays the client.
    """
    if seen.isascii() and seen.isdecimal() and len(seen) <= 18:
        return int(seen)
    return None


def _looks_like_a_message(opcode: int, payload: bytes) -> bool:
    """Whether ``payload`` begins as every user message a codec encodes does."""
    if opcode == TEXT:
        return payload.startswith(_JSON_MESSAGE)
    if not payload:
        return False
    first = payload[0]
    if 0x80 <= first <= 0x8F:
        return payload[1:6] == _MSGPACK_TYPE
    if first == 0xDE:
        return payload[3:8] == _MSGPACK_TYPE
    if first == 0xDF:
        return payload[5:10] == _MSGPACK_TYPE
    return False


def _data(opcode: int, payload: bytes) -> str | bytes:
    """A frame's payload as the clients read it: text as str (JSON), binary as bytes."""
    return payload.decode("utf-8", "replace") if opcode == TEXT else payload
