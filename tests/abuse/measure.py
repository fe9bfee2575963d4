"""What the battery measures in its own process, where the server runs: tasks, fds, memory."""

from __future__ import annotations

import os
import resource

import trio


def task_count() -> int:
    """Every live trio task, found by walking the task tree from the root."""
    count = 0
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        count += 1
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


def open_fds() -> int:
    """The number of file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


_PAGE = resource.getpagesize()


def rss() -> int:
    """The resident set size of this process, in bytes (``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


MiB = 1024 * 1024
