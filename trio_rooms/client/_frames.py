"""The connection URL: where to connect and what to ask for (the frames are `.._wire`'s)."""

from __future__ import annotations

from typing import final
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs

from ..codec import WireFormat

__all__ = ["Endpoint", "parse_url"]


@final
@attrs.frozen
class Endpoint:
    """Where to connect, from a ``ws://`` or ``wss://`` URL."""

    host: str
    port: int
    secure: bool
    path: str
    query: tuple[tuple[str, str], ...]

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the host, and the port unless it is the scheme's default.

        RFC 6455 4.1 (after RFC 7230 5.4); an IPv6 address goes in brackets.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    def resource(self, format: WireFormat, resume: str | None, seen: int | None = None) -> str:
        """The request target: the path with ``format``, ``resume`` and ``seen`` in the query."""
        query = [(k, v) for k, v in self.query if k not in ("format", "resume", "seen")]
        if format != "json":
            query.append(("format", format))
        if resume is not None:
            query.append(("resume", resume))
            if seen is not None:
                query.append(("seen", str(seen)))
        return self.path + (f"?{urlencode(query)}" if query else "")


def parse_url(url: str) -> Endpoint:
    """Split a ``ws://host:port/rooms/<room>/websocket`` URL.

    Raises:
        ValueError: Not a ``ws`` or ``wss`` URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"expected a ws:// or wss:// URL with a host, got {url!r}")
    secure = parts.scheme == "wss"
    return Endpoint(
        host=parts.hostname,
        port=parts.port or (443 if secure else 80),
        secure=secure,
        path=parts.path or "/",
        query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
    )
