"""Counting a task's scheduler steps: how a test sees whether an await yielded."""

from __future__ import annotations

import trio

__all__ = ["TaskSteps"]


class TaskSteps(trio.abc.Instrument):
    """Counts the steps of the tasks named ``name`` (or of ``task``) while installed."""

    def __init__(self, *, name: str | None = None, task: trio.lowlevel.Task | None = None) -> None:
        self.name = name
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task or (self.name is not None and task.name == self.name):
            self.steps += 1
