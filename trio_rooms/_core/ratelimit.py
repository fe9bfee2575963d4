"""``TokenBucket``: the per-session message rate limit."""

from __future__ import annotations

from typing import final

__all__ = ["TokenBucket"]


@final
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one per message.

    ``excess`` counts the messages refused since the bucket was last full: a client
    that keeps sending over the limit never lets it fill, and is closed when the
    count passes its bound.
    """

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens", "excess")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now
        self.excess = 0

    def take(self, now: float) -> bool:
        """Spend a token for a message received at ``now``; False if there is none."""
        tokens = self._tokens + (now - self._stamp) * self._rate
        self._stamp = now
        if tokens >= self._burst:
            tokens = self._burst
            self.excess = 0
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        self.excess += 1
        return False
