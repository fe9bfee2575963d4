"""What an ASGI scope says about its request, in the strings the core's heads take."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from hypercorn.typing import HTTPScope, WebsocketScope

from ._target import origin_form

__all__ = ["request_headers", "request_target"]


def request_target(scope: HTTPScope | WebsocketScope) -> str:
    """The request target as the client sent it (still percent-encoded), with its query.

    In origin form, as the embedded server's: hypercorn leaves an absolute-form target
    (``GET http://host/rooms/x``) as it came, in ``raw_path`` and ``path`` alike.
    """
    raw = scope["raw_path"]
    path = origin_form(raw.decode("latin-1") if raw else quote(scope["path"], safe="/:"))
    query = scope["query_string"]
    return f"{path}?{query.decode('latin-1')}" if query else path


def request_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """The scope's headers as latin-1 strings, names lowercased."""
    return tuple(
        (bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
        for name, value in headers
    )
