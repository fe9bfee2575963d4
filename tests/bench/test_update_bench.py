"""``benchmarks.update_bench`` runs through: its writers get every answer they expect.

It once stopped at its first rate-limit error frame (the default `RoomsConfig` limits a
session's messages per second, and each writer sends as fast as its updates are durable).
"""

from __future__ import annotations

from benchmarks.update_bench import measure


async def test_update_bench_measures_one_writer_past_the_rate_limit() -> None:
    rate = await measure(1, 1.5, "NORMAL")
    assert rate > 0
