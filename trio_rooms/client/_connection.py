"""``Connection``: one connection of a client, from its opening to its close."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, final

import attrs
import trio
import trio_websocket

from .._errors import DecodeError, RequestError
from .._message import Message
from .._wire import (
    ErrorFrame,
    PresenceDiffFrame,
    PresenceStateFrame,
    RequestFailedFrame,
    ResyncFrame,
    SessionFrame,
    SkippedFrame,
    parse_library_frame,
    split_rid,
)
from ..codec import Codec
from ._errors import ConnectError, ServerError
from ._events import Resynced
from ._frames import Endpoint
from ._handshake import LOST, first_leaf, handshake_failure, open_websocket, timed_out, where
from ._presence import PresenceTracker
from ._state import ClientState
from ._transport import WatchedStream

__all__ = ["Connection", "ConnectionSettings"]

ServerMsgT = TypeVar("ServerMsgT", bound=Message)


@final
@attrs.frozen
class ConnectionSettings(Generic[ServerMsgT]):
    """What every connection of one client is opened and run with."""

    endpoint: Endpoint
    #: Opens the byte stream of one connection attempt: TCP (and TLS) to the endpoint,
    #: or whatever a test hands in (memory streams).
    open_stream: Callable[[Endpoint], Awaitable[trio.abc.Stream]]
    server_codec: Codec[ServerMsgT]
    resume: bool
    max_message_size: int
    connect_timeout: float
    close_timeout: float
    #: Takes each frame that is not a server message (a newer message type, say).
    on_invalid: Callable[[DecodeError], None]
    on_error: Callable[[ServerError], None] | None
    #: Applies the ``$presence`` frames (None: they are skipped).
    presence: PresenceTracker[object] | None = None


@final
class Connection(Generic[ServerMsgT]):
    """One connection: it opens, then reads into ``state.inbox`` and writes ``state.outbox``."""

    def __init__(
        self, state: ClientState[ServerMsgT], settings: ConnectionSettings[ServerMsgT]
    ) -> None:
        self._state = state
        self._settings = settings

    async def run(self, started: Callable[[], None]) -> tuple[int, str]:
        """Open, serve until closed; returns the close code and reason.

        Calls ``started`` once the connection is open (and the session known).

        Raises:
            ConnectError: No connection could be opened (``ConnectTimeoutError``: not
                within ``connect_timeout``).
            ConnectionRejectedError: The server refused the handshake.
            ConnectionClosedError: The server closed with a code that is not retried, or
                its first frame was not the session frame, before the connection was open.
        """
        settings, state = self._settings, self._state
        endpoint = settings.endpoint
        if settings.resume:
            resume = state.session.token if state.session is not None else ""
        else:
            resume = None
        # How many server messages it got, so the server replays only the ones after.
        seen = state.seen if state.session is not None else 0
        resource = endpoint.resource(settings.server_codec.format, resume, seen)
        # Opening is bounded as a whole: name lookup, TCP, TLS, handshake, session frame.
        deadline = trio.current_time() + settings.connect_timeout
        raw = None
        with trio.CancelScope(deadline=deadline):
            try:
                raw = await settings.open_stream(endpoint)
            except OSError as exc:
                # trio's "all attempts failed" chains a group of each address's error.
                reason = first_leaf(exc.__cause__) if exc.__cause__ is not None else exc
                raise ConnectError(f"could not connect to {where(endpoint)}: {reason}") from exc
        if raw is None:
            raise timed_out("the TCP connection", endpoint, settings.connect_timeout)
        opening = trio.CancelScope(deadline=deadline)
        # We own the socket: trio-websocket's client leaves it open when the server closes first.
        stream = WatchedStream(raw, opening.cancel)
        failure: Exception | None = None
        result = (LOST, "")
        try:
            async with trio.open_nursery() as nursery:
                # Exceptions are carried out of the nursery by hand, not in an ExceptionGroup.
                try:
                    ws, session = await open_websocket(
                        nursery,
                        stream,
                        opening,
                        endpoint=endpoint,
                        resource=resource,
                        resume=settings.resume,
                        max_message_size=settings.max_message_size,
                        connect_timeout=settings.connect_timeout,
                    )
                    if session is not None:
                        state.session = session = _as_asked(session, state.session)
                        if not session.resumed:
                            state.seen = 0  # a new session: a new count
                    result = await self._serve_and_close(ws, started)
                except Exception as exc:
                    failure = exc
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # trio-websocket's reader task raises a failed handshake into our nursery.
            translated = handshake_failure(group, endpoint)
            if translated is None:
                raise
            raise translated from group
        finally:
            state.set_disconnected()
            with trio.CancelScope(shield=True):
                await stream.aclose()
        if failure is not None:
            raise failure
        return result

    async def _serve_and_close(
        self, ws: trio_websocket.WebSocketConnection, started: Callable[[], None]
    ) -> tuple[int, str]:
        try:
            return await self._serve(ws, started)
        finally:
            # When cancelled, trio-websocket's reader is cancelled too and could never
            # read the server's close reply: the socket is just closed (by the caller).
            if trio.current_effective_deadline() != -math.inf:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self._settings.close_timeout
                    await ws.aclose()

    async def _serve(
        self, ws: trio_websocket.WebSocketConnection, started: Callable[[], None]
    ) -> tuple[int, str]:
        try:
            self._state.set_connected()
            started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, ws, nursery.cancel_scope)
                await self._read(ws)
                # Our own close stops the reader at once: let the writer wait for the answer.
                if not self._state.closing:
                    nursery.cancel_scope.cancel()
        except trio_websocket.ConnectionClosed:
            pass
        closed = ws.closed
        if closed is None:
            return LOST, ""
        return closed.code, closed.reason or ""

    async def _read(self, ws: trio_websocket.WebSocketConnection) -> None:
        """Hand frames to ``receive`` until the connection closes."""
        settings = self._settings
        while True:
            try:
                frame = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                # No reply comes after the close frame: fail those written, now.
                self._state.requests.connection_lost(self._state.outbox)
                return
            json = settings.server_codec.format == "json"
            split = split_rid(frame) if isinstance(frame, str) == json else None
            if split is not None:
                self._settle(frame, *split)  # a reply: not counted, never replayed
                continue
            item: (
                ServerMsgT
                | Exception
                | Resynced
                | RequestFailedFrame
                | SkippedFrame
                | SessionFrame
                | _Presence
            )
            try:
                item = settings.server_codec.decode(frame)
            except DecodeError as exc:
                item = _library_frame(frame, exc)
                if isinstance(item, PresenceStateFrame | PresenceDiffFrame):
                    # Not a server message, not counted.
                    self._presence(item, frame)
                    continue
                if isinstance(item, SessionFrame):
                    self._moved(item, frame)
                    continue
                if isinstance(item, Resynced):
                    self._state.events_send.send_nowait(item)
                    continue
                if isinstance(item, RequestFailedFrame):
                    self._state.requests.settle(item.rid, RequestError(item.reason))
                    continue
                if isinstance(item, SkippedFrame):
                    # Frames the server's delivery policy dropped: counted as received,
                    # so a resume's replay starts where the server's count is.
                    self._state.seen += item.count
                    continue
                if item is exc:
                    self._state.seen += 1  # not a library frame: a message sent to us
                if isinstance(item, DecodeError):
                    settings.on_invalid(item)
                    continue
                if isinstance(item, ServerError) and settings.on_error is not None:
                    settings.on_error(item)
                    continue
            else:
                self._state.seen += 1
            await self._state.inbox_send.send(item)

    def _presence(self, frame: PresenceStateFrame | PresenceDiffFrame, data: str | bytes) -> None:
        tracker = self._settings.presence
        if tracker is None:
            return  # the client did not ask for presence
        try:
            changed = tracker.apply(frame, data)
        except DecodeError as exc:
            self._settings.on_invalid(exc)
            return
        self._state.events_send.send_nowait(changed)

    def _moved(self, session: SessionFrame, frame: str | bytes) -> None:
        """A ``$session`` mid-connection: the server moved our session to another node.

        The move spent our token: the new one is what resumes the session from now on.
        Any other session's frame is reported as invalid.
        """
        current = self._state.session
        if current is None or session.id != current.id or not session.resumed:
            self._settings.on_invalid(
                DecodeError("unexpected $session frame in the middle of a connection", frame=frame)
            )
            return
        self._state.session = session

    def _settle(self, frame: str | bytes, rid: int | None, rest: str | bytes) -> None:
        """Hand the reply in ``frame`` (``rest`` without its ``$rid``) to its request."""
        if rid is None:
            self._settings.on_invalid(
                DecodeError("expected '$rid' to be a request id", frame=frame)
            )
            return
        try:
            reply: Message | Exception = self._settings.server_codec.decode(rest)
        except DecodeError as exc:
            exc.frame = frame
            reply = exc
        self._state.requests.settle(rid, reply)

    async def _write(
        self, ws: trio_websocket.WebSocketConnection, connection_scope: trio.CancelScope
    ) -> None:
        state = self._state
        while True:
            try:
                while state.outbox:
                    # Dequeue only once written: a frame cut off by a drop is sent again.
                    await ws.send_message(state.outbox[0])
                    state.outbox.popleft()
                if state.closing:
                    await ws.aclose(1000)
                    # The reader may be waiting for someone to receive: stop it too.
                    connection_scope.cancel()
                    return
            except trio_websocket.ConnectionClosed:
                return  # the reader reports how it closed
            await state.wait_outbox_changed()


_Presence = PresenceStateFrame | PresenceDiffFrame


def _as_asked(session: SessionFrame, previous: SessionFrame | None) -> SessionFrame:
    """``session`` as the client takes it: resumed only if it is the one it asked for.

    A ``"resumed": true`` with another id (or when no session was asked for) is a
    server's error; kept as resumed, the client would count the new session's
    messages on from the old one's, and its next resume skip that many.
    """
    if session.resumed and (previous is None or session.id != previous.id):
        return attrs.evolve(session, resumed=False, replayed=None)
    return session


def _library_frame(
    frame: bytes | str, error: DecodeError
) -> Exception | Resynced | RequestFailedFrame | SkippedFrame | SessionFrame | _Presence:
    """What to hand ``receive`` (or, for ``$resync``, report) for a frame that is not a
    server message; ``error`` itself if it is no library frame either."""
    try:
        parsed = parse_library_frame(frame)
    except DecodeError as exc:  # a library frame, malformed: say how
        return exc
    match parsed:
        case ErrorFrame():
            return ServerError(parsed.text)
        case SessionFrame():
            return parsed
        case ResyncFrame():
            return Resynced(parsed.reason)
        case RequestFailedFrame() | SkippedFrame() | PresenceStateFrame() | PresenceDiffFrame():
            return parsed
        case None:
            return error
