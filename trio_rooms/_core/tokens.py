"""Resume tokens: ``<session id>.<secret>``, 256 random bits, stored only as a hash.

A token is single use (every resume issues a new one, and spends the old one with
the storage's compare-and-set on its hash: of connections racing with one token,
exactly one resumes), bound to its room (records are looked up by room and session
id) and expires ``resume_window`` seconds after the session's last write.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import final

import attrs

__all__ = ["IssuedToken", "issue", "split", "verify"]


@final
@attrs.frozen
class IssuedToken:
    token: str
    token_hash: bytes


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def issue(session_id: str) -> IssuedToken:
    """A fresh token for ``session_id`` and the hash to store."""
    secret = secrets.token_urlsafe(32)
    return IssuedToken(f"{session_id}.{secret}", _hash(secret))


def split(token: str) -> tuple[str, str] | None:
    """``(session_id, secret)``, or None if ``token`` is not shaped like one of ours."""
    session_id, dot, secret = token.partition(".")
    if not dot or not session_id or len(secret) < 32 or len(token) > 256:
        return None
    return session_id, secret


def verify(secret: str, token_hash: bytes, expires_at: float) -> bool:
    """True if ``secret`` matches ``token_hash`` (in constant time) and has not expired."""
    if not token_hash:
        return False
    matches = hmac.compare_digest(_hash(secret), token_hash)
    return matches and time.time() < expires_at
