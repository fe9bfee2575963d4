"""``ConnectRequest``: what a session knows about the request that opened it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import final
from urllib.parse import parse_qsl

import attrs

__all__ = ["ConnectRequest", "find_header", "parse_query"]


#: The query of a request without one (most of them): read-only, as it is shared.
_NO_QUERY: Mapping[str, str] = MappingProxyType({})


def parse_query(query_string: str) -> Mapping[str, str]:
    """Query parameters of ``query_string``; for a repeated name, the last value wins."""
    if not query_string:
        return _NO_QUERY
    return dict(parse_qsl(query_string, keep_blank_values=True))


def find_header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The value of header ``name`` (any case) in lower-cased ``headers``, or None.

    Repeated headers are joined by ``", "``.
    """
    name = name.lower()
    values = [value for key, value in headers if key == name]
    return ", ".join(values) if values else None


@final
@attrs.frozen(kw_only=True)
class ConnectRequest:
    """The opening handshake of a connection, as the server received it.

    Header names are lower-case; values are decoded as latin-1, as HTTP/1.1 has it.
    """

    #: The room the connection asked for (already validated).
    room: str
    #: The request path, without the query string.
    path: str
    #: The raw query string, without ``?``.
    query_string: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    #: ``(host, port)`` of the peer, when the transport knows it.
    client: tuple[str, int] | None = None
    #: Subprotocols the client offered, in its order.
    subprotocols: tuple[str, ...] = ()

    @property
    def query(self) -> Mapping[str, str]:
        """The query parameters; for a repeated name, the last value wins."""
        return parse_query(self.query_string)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None.

        Repeated headers are joined by ``", "``.
        """
        return find_header(self.headers, name)
