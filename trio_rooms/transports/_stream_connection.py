"""`Connection` over a trio stream after its handshake: the embedded server's reads,
writes, close handshake, keepalive, parking and watching of one connection."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Final, final

import trio

from .._core.config import RoomsConfig
from .._core.connection import ConnectionEnded, ConnectionParked
from .._core.outbound import PING, PONG, Frame, OutboundQueue
from ._framing import close_frame, wire_bytes
from ._inbound import Closed, InboundEvent, InboundParser, Ping
from ._parking import Parking, Sleeper
from ._socket_stream import SocketStream, socket_of
from ._stream_io import LINGER_BYTES, RECEIVE_SIZE, close_stream, read_ready
from ._watching import Watching

__all__ = ["StreamConnection"]


@final
class StreamConnection:
    """`Connection` over a trio stream, after the handshake."""

    # One per connection, alive as long as it: slots keep an idle one small.
    __slots__ = (
        "_close_state",
        "_expired",
        "_heard",
        "_kept",
        "_max_message_size",
        "_outbound",
        "_park_after",
        "_park_asked",
        "_parked_as",
        "_parser",
        "_pinged_at",
        "_pong",
        "_received",
        "_silent_since",
        "_socket",
        "_stream",
        "_waiting",
        "_watched",
        "parking",
        "watching",
    )

    def __init__(
        self, stream: trio.abc.Stream, config: RoomsConfig, *, received: bytes = b""
    ) -> None:
        self._stream = stream
        # Read with the handshake, parsed before the socket; None: the last read drained
        # the socket (see `receive`).
        self._received: bytes | None = received
        # Made at the first bytes from the client: with its event deque, close to a KiB
        # that a connection which stays silent never needs.
        self._parser: InboundParser | None = None
        self._max_message_size = config.max_message_size
        self._outbound: OutboundQueue | None = None
        #: The latest pong queued: while not yet framed, a new ping changes its payload.
        self._pong: Frame | None = None
        # Read and written without trio's stream layers (see `receive`, `_send_now`).
        self._socket = socket_of(stream)
        # Our own stream keeps what a cancelled write did not write (`KeepsUnsent`).
        self._kept = stream if isinstance(stream, SocketStream) else None
        if self._kept is not None:
            self._kept.keep_unsent = True
        #: Our close frame: not yet sent, sent, or due and then the end of the TCP
        #: connection at once (`_FAIL`).
        self._close_state = _OPEN
        # Keepalive state, read and written by the server's `Keepalive` task.
        self._heard = False
        self._silent_since = trio.current_time()
        self._pinged_at: float | None = None
        self._expired = False
        # Parking (`park_after`): decided by the keepalive task too, for a connection
        # whose reader waits for the socket (`_waiting`) and whose session is quiet.
        self._park_after = config.park_after
        self._waiting = False
        self._park_asked = False
        #: The server's parked connections (None: this one never parks).
        self.parking: Parking | None = None
        #: The descriptor it parked with last, and as what (see `wake`).
        self._parked_as: tuple[int, Sleeper] | None = None
        #: The server's watched connections (None: this one is never watched).
        self.watching: Watching | None = None
        #: While watched: the descriptor it is watched with, and whom to call on input.
        self._watched: tuple[int, Callable[[], None]] | None = None

    @property
    def keeps_unsent(self) -> bool:
        return self._kept is not None

    def attach(self, outbound: OutboundQueue) -> None:
        self._outbound = outbound
        if self._socket is not None:
            outbound.direct = self._send_now

    def _send_now(self, frames: list[Frame]) -> bytes | None:
        """Write ``frames`` without waiting, the writer being idle: the unsent rest, or None.

        A closed socket's ``fileno()`` is -1 (the write fails), so a write after close
        can never reach a descriptor the kernel gave to another connection.
        """
        socket = self._socket
        if socket is None or (self._kept is not None and self._kept.unsent):
            return None  # (what a cancelled write left goes first: the writer's)
        if len(frames) == 1:
            frame = frames[0]
            data = frame.wire or wire_bytes(frame)  # framed already: a broadcast's
        else:
            data = b"".join([wire_bytes(frame) for frame in frames])
        try:
            sent = os.write(socket.fileno(), data)
        except OSError:  # full, or broken: the writer finds out which
            return None
        return data[sent:]

    def _answer(self, payload: bytes) -> None:
        """Pong a ping: with a pong still unsent, that one answers this ping instead.

        RFC 6455 5.5.3 allows answering only the latest ping, and it bounds what a client
        that floods pings and reads nothing makes the server hold: one pong, not one per
        ping (they are control frames, under no bound of the queue's). A pong is framed
        (its ``wire`` set) as it is written, and is left alone from then on.
        """
        pong = self._pong
        if pong is not None and pong.wire is None:
            pong.payload = payload
            return
        if self._outbound is not None:
            self._pong = Frame(PONG, payload)
            self._outbound.put_control(self._pong)

    async def receive(self) -> str | bytes:
        parser = self._parser
        events = parser.events if parser is not None else None
        socket = self._socket
        while True:
            if events:
                message = self._next_event(events)
                if message is not None:
                    return message
            data = self._received
            if data:
                self._received = b""
            elif socket is None:
                data = await self._read_stream()
            else:
                # Read here, not in a coroutine of its own (an idle connection waits in
                # this frame: a coroutine less is a quarter of a KiB per connection),
                # with ``os.read`` and trio's readiness wait, as trio's own ``recv``
                # does, without its three layers of wrappers per read.
                if data is None:
                    # The last read drained the socket: a read now would only fail
                    # (a syscall and an exception), the wait is the checkpoint.
                    self._received = b""
                else:
                    await trio.lowlevel.checkpoint_if_cancelled()
                    data = read_ready(socket)
                    if data is not None:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                while data is None:
                    self._waiting = True
                    try:
                        await trio.lowlevel.wait_readable(socket)
                    except trio.ClosedResourceError:
                        # A park ask, or the socket's close (by the keepalive, after an
                        # ask that input overtook): closed, it cannot park.
                        if self._park_asked and socket.fileno() != -1:
                            # Woken by `_ask_to_park`, with nothing read: the session
                            # parks, or asks again. What a parser holds of a silent
                            # client is nothing.
                            self._park_asked = False
                            self._parser = None
                            raise ConnectionParked from None
                        data = b""  # closed by the keepalive
                    finally:
                        self._waiting = False
                    if data is None:
                        # Input woke the read in the turn the keepalive asked it to park
                        # (too late to be told): the ask is void, the next silence asks
                        # again.
                        self._park_asked = False
                        data = read_ready(socket)  # None: woken without data
                if 0 < len(data) < RECEIVE_SIZE:
                    # A short read took all the socket had (then): the next read waits
                    # first. Correct whatever arrives meanwhile: the wait sees it.
                    self._received = None
            if not data:
                reason = "keepalive timeout" if self._expired else "connection lost"
                raise ConnectionEnded(1006, reason, by_peer=True, send_close=False)
            self._heard = True
            if parser is None:
                parser = self._parser = InboundParser(self._max_message_size)
                events = parser.events
            # The common case, one whole small message per read, skips the event queue.
            message = parser.whole(data)
            if message is not None:
                return message
            parser.feed(data)

    def _next_event(self, events: deque[InboundEvent]) -> str | bytes | None:
        """The next message of ``events``, pings answered on the way; None once none is left.

        Raises:
            ConnectionEnded: The peer's close frame, or what it broke.
        """
        while events:
            event = events.popleft()
            if isinstance(event, _MESSAGES):
                return event
            if isinstance(event, Ping):
                self._answer(event.payload)
            elif isinstance(event, Closed):
                raise ConnectionEnded(event.code, event.reason, by_peer=True)
            else:
                # A broken frame, text that is not UTF-8 or a message too big on its
                # way: what follows cannot be trusted to reach the peer's close frame,
                # so ours ends the TCP connection too, at once (RFC 6455 7.1.7, "Fail
                # the WebSocket Connection"). Until then we are called again, to drain
                # what the peer still sends.
                if self._close_state == _OPEN:
                    self._close_state = _FAIL
                raise ConnectionEnded(event.code, event.reason, by_peer=False)
        return None

    def receive_nowait(self) -> str | bytes:
        """`receive`, without waiting, for a watched connection: `trio.WouldBlock` if
        nothing came.

        The socket is read at most once per message, and not at all after a read that
        drained it until the watcher says input came (`watched_input`): a read in vain
        costs a system call and an exception.
        """
        parser = self._parser
        while True:
            if parser is not None and parser.events:
                message = self._next_event(parser.events)
                if message is not None:
                    return message
            data = self._received
            if data:
                self._received = b""
            elif data is None or self._socket is None:
                raise trio.WouldBlock
            else:
                data = read_ready(self._socket)
                if data is None:
                    self._received = None
                    raise trio.WouldBlock
                if 0 < len(data) < RECEIVE_SIZE:
                    self._received = None  # (as in `receive`)
            if not data:
                reason = "keepalive timeout" if self._expired else "connection lost"
                raise ConnectionEnded(1006, reason, by_peer=True, send_close=False)
            self._heard = True
            if parser is None:
                parser = self._parser = InboundParser(self._max_message_size)
            message = parser.whole(data)
            if message is not None:
                return message
            parser.feed(data)

    def watch(self, readable: Callable[[], None]) -> Callable[[], str | bytes] | None:
        """Have the server's `Watching` call ``readable`` on input (see `Watchable`).

        None if the server watches nothing (`serve_stream`, shutting down) or the stream
        is no socket, or closed.
        """
        watching, socket = self.watching, self._socket
        if watching is None or socket is None or self._watched is not None:
            return None
        fd = socket.fileno()
        if fd == -1 or not watching.watch(fd, self):
            return None
        self._watched = (fd, readable)
        return self.receive_nowait

    def unwatch(self) -> None:
        """Stop the watch, by the descriptor it began with (the socket's may be -1 now)."""
        watched, self._watched = self._watched, None
        if watched is not None and self.watching is not None:
            self.watching.unwatch(watched[0], self)

    def watched_input(self) -> None:
        watched = self._watched
        if watched is not None:
            if self._received is None:
                self._received = b""  # input came since the read that drained the socket
            watched[1]()

    async def _close_watched(self) -> None:
        """Close the stream here (not after the session); a watcher is called back, and
        its read finds the end, as a reader waiting on the socket would be woken."""
        watched = self._watched
        self.unwatch()
        try:
            await close_stream(self._stream)
        finally:
            if watched is not None:
                self._received = b""  # read: the socket is closed, its end
                watched[1]()

    async def _read_stream(self) -> bytes:
        """The next bytes from a stream that is no socket; empty once it is gone."""
        try:
            return bytes(await self._stream.receive_some(RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send(self, frames: list[Frame]) -> None:
        if len(frames) == 1:
            await self._stream.send_all(wire_bytes(frames[0]))
        else:
            await self._stream.send_all(b"".join([wire_bytes(frame) for frame in frames]))

    async def close(self, code: int, reason: str) -> None:
        state = self._close_state
        if state != _SENT:
            self._close_state = _SENT
            await self._stream.send_all(close_frame(code, reason))
            if state == _FAIL:
                await self._drop()

    async def _drop(self) -> None:
        """End the TCP connection now, our close frame sent: the peer's cannot be waited for.

        What the socket already holds is read first (up to a bound), so that the close
        is a FIN after our frame, not a reset that could lose it, unless more is coming.
        The reader, if it waits on the socket, wakes to find it closed.
        """
        socket = self._socket
        if socket is not None:
            drained = 0
            while drained < LINGER_BYTES and (data := read_ready(socket)):
                drained += len(data)
        await self._close_watched()

    def keepalive_check(self, now: float, interval: float, timeout: float) -> bool:
        if self._heard:
            self._heard = False
            self._silent_since = now
            self._pinged_at = None
            return False
        park_after = self._park_after
        if park_after is not None and self._waiting and now - self._silent_since >= park_after:
            self._ask_to_park()
        if self._pinged_at is None:
            if now - self._silent_since >= interval and self._outbound is not None:
                self._pinged_at = now
                self._outbound.put_control(Frame(PING, b""))
            return False
        return now - self._pinged_at >= timeout

    async def keepalive_expire(self) -> None:
        self._expired = True
        self.wake()  # a parked session runs on, to find its connection gone
        await self._close_watched()  # runs in the server's keepalive task: must not raise

    # ---------------------------------------------------------------- parking

    def _ask_to_park(self) -> None:
        """Have the read woken with nothing read, soon, for the session to park if quiet.

        Asked in the turn its server's `Parking` gives it (a few per turn), and only
        then if the connection is still silent and quiet (`_ask_now`).
        """
        parking = self.parking
        if parking is not None and not self._park_asked and self._quiet():
            self._park_asked = parking.ask(self._ask_now)

    def _ask_now(self) -> None:
        """The turn of the ask: wake the read if it still waits (input since voids the
        ask: see `receive`) and may park.

        Else the ask is void (the flag too, or no later sweep would ask again).
        """
        socket = self._socket
        if (
            self._park_asked
            and self._waiting
            and socket is not None
            and socket.fileno() != -1
            and self._quiet()
        ):
            trio.lowlevel.notify_closing(socket)
        else:
            self._park_asked = False

    def _quiet(self) -> bool:
        """Whether a park may be asked for: its reader can park (a session's, never a
        relay's: asked, it would read on, to be asked again every sweep), nothing but
        the read waits on the socket (the writer is idle, which `notify_closing` would
        wake too) and nothing received is left to parse.
        """
        outbound = self._outbound
        parser = self._parser
        return (
            self._socket is not None
            and self._close_state == _OPEN
            and not self._received
            and outbound is not None
            and outbound.parks
            and outbound.idle
            and (parser is None or parser.idle)
        )

    def park(self, sleeper: Sleeper) -> bool:
        """Leave the socket to the server's waiter; False if it cannot take it (or closed)."""
        socket = self._socket
        if socket is None or self.parking is None:
            return False
        fd = socket.fileno()
        if fd == -1 or not self.parking.park(fd, sleeper):
            return False
        self._parked_as = (fd, sleeper)
        return True

    def wake(self) -> None:
        """Start the task of the parked connection (none if it is not parked).

        By the descriptor it parked with: once closed, the socket's own is -1, and a
        parked session it could not find would never end.
        """
        parked, self._parked_as = self._parked_as, None
        if self.parking is not None and parked is not None:
            self.parking.wake(*parked)

    def parked_input(self) -> bool:
        """The parked socket has input: False if it was a lone pong (it stays parked).

        What else was read is the session's, parsed before the socket (``_received``).
        """
        socket = self._socket
        assert socket is not None
        try:
            data = os.read(socket.fileno(), RECEIVE_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            return True  # reset: the session's read finds out
        self._heard = True
        if _is_pong(data):
            return False
        self._received = data
        return True


# `StreamConnection._close_state`: our close frame not sent yet; due, and the TCP
# connection to end with it (the peer broke the frame stream); sent.
_OPEN, _FAIL, _SENT = 0, 1, 2

# What `receive` returns as it is (a tuple: ``str | bytes`` would be made per call).
_MESSAGES: Final = (str, bytes)


def _is_pong(data: bytes) -> bool:
    """Whether ``data`` is exactly one masked pong frame from a client (ours answered)."""
    return (
        len(data) >= 6
        and data[0] == 0x8A  # FIN, no reserved bit, PONG
        and data[1] & 0x80 == 0x80  # masked, as a client's frame must be
        # A payload of at most 125 bytes, in the 7-bit form: the 16-bit one (126) is a
        # protocol error in a control frame, for the parser to answer with 1002.
        and data[1] & 0x7F <= 125
        and len(data) == 6 + (data[1] & 0x7F)
    )
