"""The run loop's turns, counted by one task: what a fan-out's direct writes are batched by.

trio runs the tasks that became runnable during one turn of its loop (a batch) together in
the next. A queue that wrote a broadcast straight to its socket remembers the turn; a
second frame in the same turn is queued, and its writer sends what follows in one batch.
Telling the turns apart takes one task per run, woken once per turn that wrote directly,
instead of each recipient's writer woken after each broadcast.
"""

from __future__ import annotations

from typing import final

import trio

__all__ = ["current_turn"]


@final
class _TurnCounter:
    """The turn number, moved on by a system task in the turn after it was read.

    Only a turn whose number was read needs to end: the task is woken by the first read
    of each, and stays parked while nothing reads (an idle server costs nothing).
    """

    __slots__ = ("_parked", "turn")

    def __init__(self) -> None:
        self.turn = 0
        self._parked: trio.lowlevel.Task | None = None

    def read(self) -> int:
        """The current turn, which ends once the counting task has run."""
        parked = self._parked
        if parked is not None:
            self._parked = None
            trio.lowlevel.reschedule(parked)
        return self.turn

    async def run(self) -> None:
        while True:
            self.turn += 1  # it runs in the turn after the one that read the number
            self._parked = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._parked = None  # the run is ending
        return trio.lowlevel.Abort.SUCCEEDED


_COUNTER: trio.lowlevel.RunVar[_TurnCounter] = trio.lowlevel.RunVar("trio_rooms turns")


def current_turn() -> int:
    """The number of the run loop's current turn (of this trio run; made at the first call)."""
    try:
        counter = _COUNTER.get()
    except LookupError:
        counter = _TurnCounter()
        _COUNTER.set(counter)
        trio.lowlevel.spawn_system_task(counter.run, name="trio_rooms turn counter")
    return counter.read()
