"""The demo's one ASGI app: the page, its static files, and the rooms behind them.

It answers ``GET``/``HEAD`` for:

- ``/`` with ``index.html`` from the static folder;
- ``/static/<file>`` with a file directly inside the static folder, whose name is
  letters, digits, ``_``, ``-`` and ``.`` and does not start with a dot (no
  subfolders, no percent-escapes, no ``..``; symlinks leading out are refused);

with 405 to other methods on those paths, and passes everything else (the rooms'
WebSockets and HTTP routes under ``/rooms/``, 404 elsewhere, the ASGI lifespan) to
the rooms' app. Paths are matched on the request target as the client sent it, before
any percent-decoding (an absolute-form target by the path it names, as the rooms' app
does). Hypercorn bounds request sizes and idle connections.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final, final
from urllib.parse import urlsplit

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

__all__ = ["demo_app"]

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
_TEXT: Final = "text/plain; charset=utf-8"
_CSP: Final = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def demo_app(rooms_app: ASGIFramework, static_dir: Path) -> ASGIFramework:
    """An ASGI app serving ``static_dir`` at ``/`` and ``/static/``, and ``rooms_app`` elsewhere.

    ``rooms_app`` is `trio_rooms.bind_asgi` of the demo's rooms.
    """
    return _DemoApp(rooms_app, trio.Path(Path(static_dir).resolve()))


@final
class _DemoApp:
    def __init__(self, rooms_app: ASGIFramework, root: trio.Path) -> None:
        self._rooms_app = rooms_app
        self._root = root

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            path = _raw_path(scope)
            if path == "/" or path.startswith(_STATIC_PREFIX):
                await self._static(scope, path, send)
                return
        await self._rooms_app(scope, receive, send)

    async def _static(self, scope: HTTPScope, path: str, send: ASGISendCallable) -> None:
        method = scope["method"].upper()
        if method not in ("GET", "HEAD"):
            await _send(send, 405, _TEXT, b"Method Not Allowed", head_only=False)
            return
        name = "index.html" if path == "/" else path[len(_STATIC_PREFIX) :]
        body = await self._read(name)
        if body is None:
            await _send(send, 404, _TEXT, b"Not Found", head_only=method == "HEAD")
            return
        content_type = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        await _send(send, 200, content_type, body, head_only=method == "HEAD")

    async def _read(self, name: str) -> bytes | None:
        """The file ``name`` directly inside the static folder, or None."""
        if _FILE_NAME.fullmatch(name) is None:
            return None
        try:
            resolved = await (self._root / name).resolve()
            # Refuses a symlink that leads out of the folder.
            if resolved.parent != self._root or not await resolved.is_file():
                return None
            return await resolved.read_bytes()
        except OSError:
            return None


def _raw_path(scope: HTTPScope) -> str:
    """The path as the client sent it: still percent-encoded, without the query; of an
    absolute-form target (``GET http://host/static/x``), the path it names."""
    raw = scope["raw_path"]
    path = raw.decode("latin-1") if raw else scope["path"]
    if not path.startswith("/"):
        # RFC 9112 3.2.2: hypercorn hands an absolute-form target on as sent, and the
        # rooms' app routes it by its path; so does the page. (The library keeps its own
        # helper private: its public names are about rooms, not request targets.)
        parts = urlsplit(path)
        if parts.scheme and path[len(parts.scheme) :].startswith("://"):
            return parts.path or "/"
    return path.partition("?")[0]


async def _send(
    send: ASGISendCallable, status: int, content_type: str, body: bytes, *, head_only: bool
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-cache"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if content_type.startswith("text/html"):
        headers.append((b"content-security-policy", _CSP.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send(
        {"type": "http.response.body", "body": b"" if head_only else body, "more_body": False}
    )
