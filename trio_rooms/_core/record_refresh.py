"""``RecordRefresh``: keeps the stored records of a room's live sessions resumable.

A session's record is written when it joins, at each `update()` and when it ends. A
process that dies meanwhile (kill -9, a lost lease) leaves its last one, which must still
resume the session on the next owner: its token must not have expired (a record expires
``resume_window`` after it was written), and its replay cursor must still be inside the
log, which keeps only ``ReplayLimits.max_messages`` entries, ``max_bytes`` of payload and
``max_age`` seconds. A session connected for longer than either, without an `update()`,
would come back after a crash with an expired token, or with a `$resync` although its
client missed nothing.

So the room rewrites the records of its live resumable sessions whenever half a bound
has passed since it last did: half the resume window or half the log's age, or half its
count or byte bound in frames logged. A refreshed record expires a resume window past the
next refresh, so a client has at least ``resume_window`` after a crash to come back, as
after a dropped connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn, final

import trio

from .replay import RoomLog
from .runner import SessionRunner

__all__ = ["RecordRefresh"]

#: Sessions refreshed between two schedule points: a big room's refresh does not hold
#: the scheduler for long.
_PER_TURN = 256


@final
class RecordRefresh:
    """The refresh of one room's session records, run by the room for as long as it lives."""

    __slots__ = ("_log", "_runners", "resume_window")

    def __init__(self, log: RoomLog, runners: Mapping[str, SessionRunner]) -> None:
        self._log = log
        self._runners = runners
        self.resume_window = 600.0

    def interval(self) -> float:
        """Seconds between two refreshes at most: half the resume window or log age."""
        limits = self._log.limits
        bound = self.resume_window if limits is None else min(self.resume_window, limits.max_age)
        return bound / 2

    async def run(self) -> NoReturn:
        """Refresh the records each time one is due, until cancelled."""
        while True:
            interval = self.interval()
            with trio.move_on_after(interval):
                limits = self._log.limits
                if limits is None:
                    await trio.sleep_forever()
                else:
                    await self._log.wait_grown(
                        max(limits.max_messages // 2, 1), max(limits.max_bytes // 2, 1)
                    )
            await self._refresh(interval)

    async def _refresh(self, interval: float) -> None:
        for index, runner in enumerate(tuple(self._runners.values()), 1):
            runner.refresh_record(longer=interval)
            if index % _PER_TURN == 0:
                await trio.lowlevel.checkpoint()
