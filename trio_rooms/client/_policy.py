"""``ReconnectPolicy``: when to reconnect, and how long to wait before each attempt."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import final

import attrs

__all__ = ["RETRIED_CLOSE_CODES", "ReconnectPolicy"]

RETRIED_CLOSE_CODES = frozenset({1001, 1006, 1012, 1013})
"""Close codes after which the client reconnects: going away, connection lost (no close
frame), service restart, try again later. Every other code ends the client."""


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@final
@attrs.frozen
class ReconnectPolicy:
    """Exponential backoff with jitter between reconnect attempts.

    Attempt ``n`` (from 1) waits ``min(max_delay, initial_delay * multiplier ** (n - 1))``,
    scaled by a random factor in ``[1 - jitter, 1]`` so that clients dropped together do
    not come back together.

    Args:
        initial_delay: Seconds before the first attempt.
        max_delay: The longest wait between attempts.
        multiplier: Growth of the wait from one attempt to the next (at least 1).
        jitter: The fraction of each wait that is random, in ``[0, 1]``.
        max_attempts: Attempts in a row before giving up; ``None`` retries forever.
            ``0`` never reconnects.
    """

    initial_delay: float = attrs.field(default=0.1, validator=_positive)
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0)
    jitter: float = attrs.field(default=0.5)
    max_attempts: int | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter!r}")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0 or None, got {self.max_attempts!r}")
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay!r}) is less than initial_delay "
                f"({self.initial_delay!r})"
            )

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The seconds to wait before attempt number ``attempt`` (from 1)."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        # Past the cap the exponent only grows; stop before the float overflows.
        base = self.initial_delay
        for _ in range(attempt - 1):
            base *= self.multiplier
            if base >= self.max_delay:
                break
        base = min(base, self.max_delay)
        return base * (1 - self.jitter * rng.random())

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before each attempt, as many as ``max_attempts`` allows."""
        rng = rng if rng is not None else random.Random()
        attempt = 1
        while self.max_attempts is None or attempt <= self.max_attempts:
            yield self.delay(attempt, rng)
            attempt += 1

    @staticmethod
    def retries(code: int) -> bool:
        """Whether a connection closed with ``code`` is reconnected."""
        return code in RETRIED_CLOSE_CODES
