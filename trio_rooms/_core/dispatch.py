"""``SessionDispatch``: a session's received frames, handed to its hooks in order.

A frame is a message for ``on_message`` (or ``on_bytes``), a request for the handler
its session ``replies`` with (``$rid``), or invalid input for ``on_invalid``. Each runs
holding the room's gate, one event of the room at a time; request handlers run in a
nursery opened at the session's first request, and may overlap (at most
``max_requests_in_flight``), each taking the gate in arrival order.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, cast

import trio

from .._errors import DecodeError, RequestError
from .._message import Message
from .._rpc import Request
from .._wire import RequestFailedFrame, add_rid, split_rid
from ..codec import WireFormat
from .connection import Connection, ConnectionEnded, ConnectionParked
from .eager import DONE, first_step, resume, run_eagerly
from .inbox import Inbox
from .outbound import BINARY, TEXT, Frame
from .runner_sides import RoomSide, SessionHooks
from .session_codecs import library_frame
from .session_io import Reads, SessionIO

__all__ = ["SessionDispatch"]

#: The session runner its room holds (`runner.SessionRunner`).
RunnerT = TypeVar("RunnerT")


class SessionDispatch(SessionIO, Generic[RunnerT]):
    """Hands one session's frames to its hooks (a `SessionRunner`'s base)."""

    __slots__ = (
        "_in_flight",
        "_invalid_in_a_row",
        "_request_scopes",
        "_responders",
        "_takes_bytes",
    )

    # The runner's: its hooks, room and codecs.
    session: SessionHooks
    room_side: RoomSide[RunnerT] | None
    format: WireFormat
    check: Callable[[Message], None] | None

    def __init__(
        self,
        *,
        takes_bytes: bool,
        responders: Mapping[type[Request[Any]], Callable[[Any, Any], Awaitable[Message]]],
    ) -> None:
        super().__init__()
        #: The session overrides ``on_bytes``: binary frames on JSON are its to take.
        self._takes_bytes = takes_bytes
        #: The session's request handlers (`replies`), and how many of them are running.
        self._responders = responders
        self._in_flight = 0
        #: The cancel scopes of the running handlers: a close gives them close_timeout
        #: (made at the first request: most sessions never send one).
        self._request_scopes: set[trio.CancelScope] | None = None
        self._invalid_in_a_row = 0

    def enqueue(self, frame: Frame) -> None:
        """Queue ``frame`` for the client (`SessionRunner.enqueue`)."""
        raise NotImplementedError

    async def _report(self, error: Exception) -> None:
        raise NotImplementedError

    def encode(self, message: Message) -> bytes:
        """The payload of ``message`` (`SessionRunner.encode`)."""
        raise NotImplementedError

    def _decode(self, data: str | bytes) -> Message:
        raise NotImplementedError

    # --------------------------------------------------------------- handling

    async def _handle_all(
        self, connection: Connection, inbox: Inbox, requests: trio.Nursery | None = None
    ) -> None:
        """Handle the session's frames in order until the connection ends.

        Without a ``requests`` nursery, the first request opens it, and this goes on
        inside it (its handlers run there, and end before on_close): a nursery only for
        the sessions that send requests, and no frame per session above this loop.

        A hook that returns without waiting leaves the reading here, a broadcast's too:
        its sender's next frame is read by this task, not handed over by the reader (a
        task step and a run-loop turn on every broadcast's latency). Several senders'
        broadcasts in one turn are still batched per recipient (`OutboundQueue.put_first`).
        """
        limit = self._config().inbound_max_messages
        burst = 0
        # Until the session closes, the handler's reads are outside its shield: they are
        # the session's watch on its caller (as the reader's waits are, see
        # `_read_loop`), and lose nothing when cancelled. Its hooks are shielded, but
        # the shield goes up only once a hook waits: one that returns without waiting
        # (most do) cannot see a cancellation the checkpoint before it did not, and
        # the shield toggled twice per message cost more than the rest of the dispatch.
        scope = self._handler_scope
        shielded = True  # as the runner entered it (`shielded` is ``scope.shield``)
        while True:
            if self._reads is Reads.HANDLER:
                # The handler's read, here and not in a coroutine of its own: an idle
                # session waits in it (a coroutine less is a quarter of a KiB each).
                watch = self.closing is None
                if shielded == watch:
                    scope.shield = shielded = not watch
                try:
                    try:
                        item = await connection.receive()
                    except trio.Cancelled:
                        if not watch or not self._cancelled_by_caller(scope):
                            scope.shield = True
                            raise
                        shielded = True  # by `_cancelled_by_caller`
                        continue
                    except ConnectionParked:
                        scope.shield = shielded = True  # parked, it is renewed as it is
                        if self._handler_parks(connection):
                            return  # `_reads` is PARKED
                        continue
                    except BaseException:
                        scope.shield = shielded = True
                        raise
                # Ended: what closing does (a drain) is shielded again.
                except (ConnectionEnded, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    await self._handler_read_ended(connection, exc)
                    return
                # `_take`, inline: every message's path.
                self.counters.messages_in += 1
                if self._rate_limited and not self._within_rate_limit():
                    continue  # over the rate limit: dropped
                burst += 1
                if burst >= limit:
                    # Frames parsed from one read come without a wait: let others run.
                    burst = 0
                    if not shielded:
                        scope.shield = shielded = True
                    await trio.lowlevel.checkpoint()
                elif not shielded:
                    # The read may have returned without a checkpoint (a frame parsed
                    # earlier), or the caller been cancelled since its wait ended: the
                    # hook then runs shielded, as always, and the next read sees it.
                    try:
                        await trio.lowlevel.checkpoint_if_cancelled()
                    except trio.Cancelled:
                        scope.shield = shielded = True
            else:
                if not shielded:
                    scope.shield = shielded = True  # the inbox's wait is shielded
                try:
                    # Take what is already queued without yielding; wait only when empty.
                    item = inbox.receive_nowait()
                except trio.WouldBlock:
                    item = None  # waited for below: inside `except`, the idle wait would
                    # keep the exception and its traceback alive, per idle session
                except trio.EndOfChannel:
                    return
                if item is None:
                    if self._reads is Reads.READER:
                        # The reader hands it the next frame, and the reading with it.
                        self._reads = Reads.READER_HANDLER_IDLE
                    try:
                        item = await inbox.receive()
                    except trio.EndOfChannel:
                        return
            closing = self.closing
            if closing is not None and not closing.by_peer:
                continue  # we are closing: what the peer still sends is not handled
            # A request is a frame of the session's own kind (binary on JSON: on_bytes).
            # `split_rid`'s first test inline, as `reattach` does (few frames are requests).
            if isinstance(item, str):
                split = split_rid(item) if "$rid" in item and self.format == "json" else None
            else:
                split = split_rid(item) if b"$rid" in item and self.format == "msgpack" else None
            if split is not None and requests is None:
                if not shielded:
                    scope.shield = True  # the requests' nursery is shielded, as its handlers
                async with trio.open_nursery() as requests:
                    await run_eagerly(self._handle(item, split, requests), self._lend_reading)
                    await self._handle_all(connection, inbox, requests)
                return
            # `run_eagerly`, inline: the hook's first step; if it waits, the shield goes
            # up and the reader reads meanwhile.
            work = self._handle(item, split, requests)
            trap = first_step(work)
            if trap is not DONE:
                self._lend_reading()
                if shielded or trio.current_effective_deadline() != -math.inf:
                    scope.shield = shielded = True
                    await resume(work, trap)
                else:
                    # The hook's first step cancelled the server itself (nothing else ran
                    # meanwhile). Trio has promised that cancellation to the wait: a lock's
                    # acquire checked for it and now expects it (raised shielded, it fails
                    # an assertion). So it is delivered there, trio's own rule for a task
                    # that cancels its own caller, and the session closes with 1001.
                    try:
                        await resume(work, trap)
                    except trio.Cancelled:
                        if not self._cancelled_by_caller(scope):
                            raise
                    shielded = scope.shield

    async def _handle(
        self,
        item: str | bytes,
        split: tuple[int | None, str | bytes] | None,
        requests: trio.Nursery | None,
    ) -> None:
        """Handle one frame: a request's handler is started, a message's hook awaited."""
        # The first reply to this message may go straight to the socket (not behind
        # ASGI, whose writes wait: there the writer sends it).
        outbound = self.outbound
        if outbound.direct is not None:
            outbound.allow_direct()
        if split is not None:
            assert requests is not None
            await self._take_request(item, *split, requests)
            return
        room = self.room_side
        assert room is not None
        gate = room.gate
        # One event of the room at a time (taken without yielding when free).
        try:
            gate.acquire_nowait()
        except trio.WouldBlock:
            await gate.acquire()
        try:
            if self.format == "json" and type(item) is str:
                # `_dispatch`'s common case inline: a coroutine less per message.
                try:
                    message = self._decode(item)
                except DecodeError as exc:
                    error = exc
                else:
                    if not isinstance(message, Request):
                        self._invalid_in_a_row = 0
                        await self.session.on_message(message)
                        return
                    error = _needs_rid(cast("Request[Any]", message))
                await self._on_invalid(item, error)
            else:
                await self._dispatch(item)
        except Exception as exc:
            await self._report(exc)
        finally:
            gate.release()

    async def _dispatch(self, item: str | bytes) -> None:
        """Hand one received frame to the hook it belongs to."""
        session = self.session
        if isinstance(item, bytes) and self.format == "json":
            # The default on_bytes is invalid input, and counts as such.
            if self._takes_bytes:
                self._invalid_in_a_row = 0
                await session.on_bytes(item)
                return
            error = DecodeError("binary frames are not accepted by this session")
        elif isinstance(item, str) and self.format == "msgpack":
            error = DecodeError("expected a binary (msgpack) frame, got a text frame")
        else:
            try:
                message = self._decode(item)
            except DecodeError as exc:
                error = exc
            else:
                if not isinstance(message, Request):
                    self._invalid_in_a_row = 0
                    await session.on_message(message)
                    return
                error = _needs_rid(cast("Request[Any]", message))
        await self._on_invalid(item, error)

    async def _on_invalid(self, item: str | bytes, error: DecodeError) -> None:
        """Count ``item`` as invalid and hand it to on_invalid (unless that closes)."""
        if self._count_invalid():
            return
        error.frame = item
        await self.session.on_invalid(error)

    # --------------------------------------------------------------- requests

    async def _take_request(
        self, item: str | bytes, rid: int | None, rest: str | bytes, requests: trio.Nursery
    ) -> None:
        """Start answering the request in ``item`` (``rest`` is it without its ``$rid``).

        Its handler takes the gate before the next frame is handled, so requests and
        messages start in the order they arrived; a request that cannot be answered
        gets its ``$error`` at once.
        """
        if rid is None:
            await self._invalid(item, DecodeError("expected '$rid' to be a request id"))
            return
        try:
            message = self._decode(rest)
        except DecodeError as exc:
            self._count_invalid()
            self._refuse(rid, str(exc))
            return
        self._invalid_in_a_row = 0
        request = cast("Request[Any]", message) if isinstance(message, Request) else None
        responder = None if request is None else self._responders.get(type(request))
        limit = self._config().max_requests_in_flight
        if request is None or responder is None:
            self._refuse(rid, f"{message.tag!r} is not a request this session answers")
        elif self._in_flight >= limit:
            self._refuse(rid, f"too many requests in flight: at most {limit}")
        else:
            self._in_flight += 1
            await requests.start(self._answer, responder, request, rid)

    async def _answer(
        self,
        responder: Callable[[Any, Any], Awaitable[Message]],
        request: Request[Any],
        rid: int,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        room = self.room_side
        assert room is not None
        try:
            # Taken before the next frame is handled (the gate is fair): arrival order.
            await room.gate.acquire()
            task_status.started()
            scope = trio.CancelScope()
            if self.closing is not None:
                scope.deadline = trio.current_time() + room.config.close_timeout
            scopes = self._request_scopes
            if scopes is None:
                scopes = self._request_scopes = set()
            scopes.add(scope)
            try:
                with scope:
                    frame = await self._reply(responder, request, rid)
                    if self.closing is None:
                        self.enqueue(frame)  # not logged: a reply is never replayed
                    else:
                        self.counters.dropped += 1
            finally:
                scopes.discard(scope)
                room.gate.release()
        finally:
            self._in_flight -= 1

    async def _reply(
        self, responder: Callable[[Any, Any], Awaitable[Message]], request: Request[Any], rid: int
    ) -> Frame:
        try:
            reply = await responder(self.session, request)
            if not isinstance(reply, request.reply_classes):
                expected = " | ".join(cls.__qualname__ for cls in request.reply_classes)
                raise TypeError(  # noqa: TRY301 - reported below, like the handler's own
                    f"the handler of {type(request).__qualname__} returned "
                    f"{type(reply).__qualname__}, expected {expected}"
                )
            if self.check is not None:
                self.check(reply)
            payload = add_rid(self.format, self.encode(reply), rid)
        except RequestError as exc:
            return library_frame(self.format, RequestFailedFrame(rid, exc.reason))
        except Exception as exc:
            await self._report(exc)
            return library_frame(self.format, RequestFailedFrame(rid, "internal error"))
        return Frame(TEXT if self.format == "json" else BINARY, payload)

    def _refuse(self, rid: int, reason: str) -> None:
        self.enqueue(library_frame(self.format, RequestFailedFrame(rid, reason)))

    def _count_invalid(self) -> bool:
        """Count an invalid frame; True if that was one too many in a row (closing)."""
        self.counters.invalid += 1
        self._invalid_in_a_row += 1
        if self._invalid_in_a_row >= self._config().max_invalid_in_a_row:
            self.begin_close(1008, "too many invalid messages")
            return True
        return False

    async def _invalid(self, item: str | bytes, error: DecodeError) -> None:
        if self._count_invalid():
            return
        error.frame = item
        room = self.room_side
        assert room is not None
        async with room.gate:
            try:
                await self.session.on_invalid(error)
            except Exception as exc:
                await self._report(exc)


def _needs_rid(request: Request[Any]) -> DecodeError:
    return DecodeError(f"{request.tag!r} is a request: it needs a '$rid'")
