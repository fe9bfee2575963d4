"""Resume tokens: ``<session id>.<secret>``, 256 random bits, stored only as a hash.

A token is single use (every resume issues a new one, and spends the old one with
the storage's compare-and-set on its hash: of connections racing with one token,
exactly one resumes), bound to its room (records are looked up by room and session
id) and expires ``resume_window`` seconds after the session's last write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from typing import final

import attrs

__all__ = ["IssuedToken", "issue", "session_id", "split", "verify"]

# A session id is 18 random bytes (144 bits) in URL-safe base64: 24 characters, no
# padding, as ``secrets.token_urlsafe(18)``. They are cut from one draw of the OS's
# source for `_IDS_PER_DRAW` sessions: a system call per handshake less.
_ID_BYTES = 18
_ID_CHARS = 24
_IDS_PER_DRAW = 64
_ids: list[str] = []
# A forked child must not hand out the ids its parent will.
os.register_at_fork(after_in_child=_ids.clear)


def session_id() -> str:
    """A fresh session id: unguessable, URL-safe, 24 characters."""
    if not _ids:
        drawn = base64.urlsafe_b64encode(os.urandom(_ID_BYTES * _IDS_PER_DRAW)).decode("ascii")
        _ids.extend(drawn[start : start + _ID_CHARS] for start in range(0, len(drawn), _ID_CHARS))
    return _ids.pop()


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
