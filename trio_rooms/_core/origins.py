"""Browser origins: the allow-list check shared by WebSocket handshakes and routes."""

from __future__ import annotations

__all__ = ["normalize_origin", "origin_allowed"]


def origin_allowed(origin: str | None, allowed: frozenset[str] | None) -> bool:
    """Whether a handshake's ``Origin`` header passes the allow-list.

    No list allows every origin. A request without ``Origin`` is not from a browser:
    such a client can send any header it likes, so the list (a defence against
    cross-site WebSocket hijacking in browsers) lets it through.
    """
    if allowed is None or origin is None:
        return True
    return normalize_origin(origin) in allowed


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a trailing slash."""
    return origin.strip().rstrip("/").lower()
