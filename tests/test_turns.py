"""The run loop's turns, as the fan-out's direct writes tell them apart."""

from __future__ import annotations

import trio
import trio.testing

from trio_rooms._core.turns import current_turn


async def test_the_turn_stays_within_a_task_step_and_moves_on_after_a_checkpoint() -> None:
    """Reads without a schedule point between them get one number, and a read after the
    reader yielded to the run loop (and its woken tasks ran) gets a later one."""
    current_turn()  # the first read of the run makes the counter's task
    await trio.testing.wait_all_tasks_blocked()  # which parks
    first = current_turn()
    assert current_turn() == first
    await trio.testing.wait_all_tasks_blocked()
    later = current_turn()
    assert later > first
    await trio.testing.wait_all_tasks_blocked()
    assert current_turn() > later


async def test_each_trio_run_counts_its_own_turns() -> None:
    """A second trio run (a thread's) gets a counter of its own, which works as the first."""

    def in_another_run() -> bool:
        async def main() -> bool:
            first = current_turn()
            await trio.testing.wait_all_tasks_blocked()
            await trio.testing.wait_all_tasks_blocked()
            return current_turn() > first

        return trio.run(main)

    current_turn()
    assert await trio.to_thread.run_sync(in_another_run)
