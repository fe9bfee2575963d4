"""A log line that a flood of its cause cannot turn into a flood of lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import final

__all__ = ["ThrottledLog"]


@final
class ThrottledLog:
    """Logs at most one line per ``interval`` seconds and counts the ones it drops.

    For events a peer causes (bad handshakes, resets): one client sending thousands of
    them gets one line per interval, which says how many were left out.
    """

    __slots__ = ("_clock", "_interval", "_level", "_logger", "_next", "_suppressed")

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._suppressed = 0

    def log(self, message: str, *args: object) -> None:
        """Log ``message % args`` unless a line was logged less than ``interval`` ago."""
        if not self._logger.isEnabledFor(self._level):
            return
        now = self._clock()
        if now < self._next:
            self._suppressed += 1
            return
        self._next = now + self._interval
        if self._suppressed:
            message += " (%d more like it since the last report)"
            args = (*args, self._suppressed)
            self._suppressed = 0
        self._logger.log(self._level, message, *args)
