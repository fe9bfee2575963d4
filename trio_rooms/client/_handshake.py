"""Opening one WebSocket: the bounded handshake, the session frame, and what failures mean."""

from __future__ import annotations

from typing import cast

import trio
import trio_websocket
import wsproto.utilities

from .._errors import ConnectionClosedError, DecodeError
from .._wire import SessionFrame, parse_library_frame
from ._errors import ConnectError, ConnectionRejectedError, ConnectTimeoutError
from ._frames import Endpoint
from ._policy import ReconnectPolicy
from ._transport import WatchedStream

__all__ = ["LOST", "first_leaf", "handshake_failure", "open_websocket", "timed_out", "where"]

# The close code trio-websocket reports when the connection was lost without a close frame.
LOST = 1006


def where(endpoint: Endpoint) -> str:
    """``host:port``, for messages."""
    return f"{endpoint.host}:{endpoint.port}"


def timed_out(step: str, endpoint: Endpoint, timeout: float) -> ConnectTimeoutError:
    """The error for ``step`` (``"the TCP connection"``...) not through within ``timeout``."""
    message = f"{step} to {where(endpoint)} was not through within connect_timeout={timeout} s"
    return ConnectTimeoutError(message, timeout)


async def open_websocket(
    nursery: trio.Nursery,
    stream: WatchedStream,
    opening: trio.CancelScope,
    *,
    endpoint: Endpoint,
    resource: str,
    resume: bool,
    max_message_size: int,
    connect_timeout: float,
) -> tuple[trio_websocket.WebSocketConnection, SessionFrame | None]:
    """The WebSocket handshake and, with ``resume``, the session frame, within ``opening``.

    ``opening`` is cancelled by ``stream`` if the connection ends first, and at the
    ``connect_timeout`` deadline. trio-websocket's reader runs in ``nursery``; what it
    raises there is translated by :func:`handshake_failure`.

    Raises:
        ConnectError: The connection ended first (``ConnectTimeoutError``: the deadline).
        ConnectionRejectedError: The server refused the handshake.
        ConnectionClosedError: The server closed with a code that is not retried, or its
            first frame was not the session frame.
    """
    step = "the WebSocket handshake"
    with opening:
        try:
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                # Documented as any trio.abc.Stream; only the annotation is narrower.
                stream,  # pyright: ignore[reportArgumentType]
                endpoint.host_header,
                resource,
                max_message_size=max_message_size,
            )
            session = None
            if resume:
                step = "the session frame"
                session = await _session_info(ws)
        except trio_websocket.ConnectionRejected as exc:
            raise _rejected(exc) from exc
        except trio_websocket.HandshakeError as exc:
            raise ConnectError(f"the WebSocket handshake failed: {exc!r}") from exc
        except trio_websocket.ConnectionClosed as exc:
            # Closed before the session frame: the connection never opened.
            closed = exc.reason
            code, reason = (closed.code, closed.reason or "") if closed else (LOST, "")
            if not ReconnectPolicy.retries(code):
                raise ConnectionClosedError(code, reason) from exc
            if not stream.ended:
                message = f"the server at {where(endpoint)} closed with {code} before {step}"
                raise ConnectError(message) from exc
            # Else the connection was dropped: said below, as when the drop came first.
        else:
            return ws, session
    if stream.ended:
        how = "closed the connection" if stream.error is None else "reset the connection"
        message = f"the server at {where(endpoint)} {how} during {step}"
        raise ConnectError(message) from stream.error
    raise timed_out(step, endpoint, connect_timeout)


async def _session_info(ws: trio_websocket.WebSocketConnection) -> SessionFrame:
    frame = await ws.get_message()
    try:
        info = parse_library_frame(frame)
    except DecodeError as exc:  # a library frame, malformed
        info, got = None, f": {exc}"
    else:
        got = f", got {frame[:200]!r}"
    if not isinstance(info, SessionFrame):
        await ws.aclose(1002, "expected the $session frame first")
        raise ConnectionClosedError(1002, f"expected the $session frame first{got}")
    return info


def handshake_failure(
    group: BaseExceptionGroup[BaseException], endpoint: Endpoint
) -> Exception | None:
    """The error to raise for a handshake failed in trio-websocket's reader task.

    ``None`` if ``group`` is another failure.
    """
    rejected, _ = group.split(trio_websocket.ConnectionRejected)
    if rejected is not None:
        first = first_leaf(rejected)
        assert isinstance(first, trio_websocket.ConnectionRejected)
        return _rejected(first)
    broken, rest = group.split(lambda exc: _server_protocol_error(exc) is not None)
    if broken is not None and rest is None:
        error = _server_protocol_error(first_leaf(broken))
        message = f"the server at {where(endpoint)} did not answer as a WebSocket server: {error}"
        return ConnectError(message)
    return None


def _rejected(exc: trio_websocket.ConnectionRejected) -> ConnectionRejectedError:
    body = (exc.body or b"").decode("utf-8", "replace")
    return ConnectionRejectedError(exc.status_code, body[:1000])


def _server_protocol_error(exc: BaseException) -> wsproto.utilities.ProtocolError | None:
    """The server's protocol error behind ``exc``, raised by trio-websocket's reader.

    Answering a bad handshake reply, the reader sends a server's rejection, which h11
    refuses: the server's own error is then in the chain of contexts.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, wsproto.utilities.ProtocolError):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None


def first_leaf(exc: BaseException) -> BaseException:
    """``exc``, or its first leaf exception if it is a group."""
    while isinstance(exc, BaseExceptionGroup):
        exc = cast("BaseExceptionGroup[BaseException]", exc).exceptions[0]
    return exc
