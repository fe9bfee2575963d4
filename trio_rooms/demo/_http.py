"""A tiny static-file HTTP/1.1 server on trio and h11, for the demo page only.

It answers ``GET``/``HEAD`` for:

- ``/`` with ``index.html`` from the static folder;
- ``/static/<file>`` with a file directly inside the static folder, whose name is
  letters, digits, ``_``, ``-`` and ``.`` and does not start with a dot (no
  subfolders, no percent-escapes, no ``..``; symlinks leading out are refused);
- the fixed in-memory documents it was given (``/config.json``);

and 404 to anything else (405 to other methods). Each request (its head and any body)
must arrive within ``request_timeout`` and fit in ``max_request_size`` bytes, or the
connection is closed (431/413 when the request was too big). Connections are kept
alive for up to ``_MAX_REQUESTS`` requests.

This is not a general web server: the demo's next version serves the page with
hypercorn.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Final, final

import attrs
import h11
import trio

__all__ = ["serve_static"]

_logger = logging.getLogger("trio_rooms.demo")

_STATIC_PREFIX: Final = "/static/"
_FILE_NAME: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
_RECEIVE_SIZE: Final = 16384
_MAX_REQUESTS: Final = 100
_CSP: Final = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@final
@attrs.frozen
class _Response:
    status: int
    content_type: str
    body: bytes


def _text(status: int, text: str) -> _Response:
    return _Response(status, "text/plain; charset=utf-8", text.encode())


async def serve_static(
    static_dir: Path,
    host: str,
    port: int,
    documents: Mapping[str, tuple[str, bytes]] | None = None,
    *,
    request_timeout: float = 10.0,
    max_request_size: int = 16384,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``static_dir`` over HTTP/1.1 on ``host:port`` until cancelled.

    Args:
        static_dir: The folder holding ``index.html`` and the files under ``/static/``.
        host: The address to listen on.
        port: The port to listen on; 0 for a free one.
        documents: Extra paths answered from memory: path -> (content type, body).
        request_timeout: Seconds a client has to send each request in full.
        max_request_size: Largest request (head plus body) in bytes.

    With ``nursery.start``, returns the bound port once listening. Cancelling stops
    accepting and drops the open connections.
    """
    site = _Site(
        root=await trio.Path(static_dir).resolve(),
        documents=dict(documents or {}),
        request_timeout=request_timeout,
        max_request_size=max_request_size,
    )
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, partial(_serve_connection, site), listeners)
        task_status.started(bound)


@final
@attrs.frozen(kw_only=True)
class _Site:
    root: trio.Path
    documents: dict[str, tuple[str, bytes]]
    request_timeout: float
    max_request_size: int

    async def respond(self, method: str, target: str) -> _Response:
        if method not in ("GET", "HEAD"):
            return _text(405, "Method Not Allowed")
        path = target.partition("?")[0]
        document = self.documents.get(path)
        if document is not None:
            return _Response(200, *document)
        if path == "/":
            name = "index.html"
        elif path.startswith(_STATIC_PREFIX):
            name = path[len(_STATIC_PREFIX) :]
        else:
            return _text(404, "Not Found")
        body = await self._read(name)
        if body is None:
            return _text(404, "Not Found")
        content_type = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        return _Response(200, content_type, body)

    async def _read(self, name: str) -> bytes | None:
        """The file ``name`` directly inside the static folder, or None."""
        if _FILE_NAME.fullmatch(name) is None:
            return None
        path = self.root / name
        try:
            resolved = await path.resolve()
            # Refuses a symlink that leads out of the folder.
            if resolved.parent != self.root or not await resolved.is_file():
                return None
            return await resolved.read_bytes()
        except OSError:
            return None


async def _serve_connection(site: _Site, stream: trio.SocketStream) -> None:
    try:
        await _serve_requests(site, stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away
    except Exception:
        # One broken connection must never stop the listener.
        _logger.exception("HTTP connection failed")
    finally:
        await trio.aclose_forcefully(stream)


async def _serve_requests(site: _Site, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=site.max_request_size)
    for _ in range(_MAX_REQUESTS):
        try:
            request = None
            with trio.move_on_after(site.request_timeout):
                request = await _read_request(conn, stream, site.max_request_size)
            if request is None:
                return  # timed out or the client closed the connection
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = exc.error_status_hint
                response = _text(status, _REASONS.get(status, "Error"))
                await _send(conn, stream, response, head_only=False, close=True)
            return
        response = await site.respond(
            request.method.decode("ascii"), request.target.decode("latin-1")
        )
        await _send(conn, stream, response, head_only=request.method == b"HEAD")
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return
        conn.start_next_cycle()


class _TooBigError(h11.RemoteProtocolError):
    pass


async def _read_request(
    conn: h11.Connection, stream: trio.SocketStream, max_size: int
) -> h11.Request | None:
    """Read one request and its body (discarded); None if the client closed first.

    h11 bounds only a head that is still incomplete; ``size`` bounds the whole request.
    """
    request: h11.Request | None = None
    size = 0
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            request = event
            if size - len(conn.trailing_data[0]) > max_size:
                raise _TooBigError("request head too large", error_status_hint=431)
        if size > max_size:
            status = 431 if request is None else 413
            raise _TooBigError("request too large", error_status_hint=status)
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_RECEIVE_SIZE)
            size += len(data)
            conn.receive_data(data)
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            # PAUSED cannot happen: each request is answered before the next is read.
            return None


_REASONS: Final = {
    400: "Bad Request",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}


async def _send(
    conn: h11.Connection,
    stream: trio.SocketStream,
    response: _Response,
    *,
    head_only: bool,
    close: bool = False,
) -> None:
    headers = [
        ("content-type", response.content_type),
        ("content-length", str(len(response.body))),
        ("cache-control", "no-cache"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ]
    if response.content_type.startswith("text/html"):
        headers.append(("content-security-policy", _CSP))
    if close:
        headers.append(("connection", "close"))
    parts = [
        conn.send(
            h11.Response(
                status_code=response.status,
                headers=headers,
                reason=HTTPStatus(response.status).phrase,
            )
        )
    ]
    if not head_only and response.body:
        parts.append(conn.send(h11.Data(data=response.body)))
    parts.append(conn.send(h11.EndOfMessage()))
    await stream.send_all(b"".join(parts))
