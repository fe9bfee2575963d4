"""What stalls delivery in s2: the run loop's turns, the parks in each, the GC's pauses.

``bench_server --trace FILE`` installs a `TurnTrace`: a turn is what trio runs between
two waits for I/O, so a chat that arrives during a long turn waits for all of it before
its broadcast starts. At exit the trace writes one JSON object: the longest turns (with
the parks done in them) and every collection's pause, both within the window from the
first to the last chat received (s2's send window) and over the whole run.

Durations are the process's CPU time (``time.thread_time``: trio runs in one thread),
not wall time: on a shared box, a turn preempted by another process is not longer.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import final

import trio

__all__ = ["TurnTrace"]


@final
class TurnTrace(trio.abc.Instrument):
    """Times every run-loop turn and every GC pause; `write` summarises them."""

    def __init__(self, parks: Callable[[], int]) -> None:
        self._parks = parks
        self._turn_start = 0.0
        self._turn_cpu = 0.0
        self._parks_at_start = 0
        #: (start, duration s, parks in the turn) of each turn.
        self.turns: list[tuple[float, float, int]] = []
        #: (start, duration s, generation) of each collection.
        self.pauses: list[tuple[float, float, int]] = []
        self._gc_start = 0.0
        self._gc_cpu = 0.0
        self.first_chat: float | None = None
        self.last_chat = 0.0
        gc.callbacks.append(self._on_gc)

    def chat(self) -> None:
        """A chat arrived: the window runs from the first to the last."""
        now = time.perf_counter()
        if self.first_chat is None:
            self.first_chat = now
        self.last_chat = now

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
            self._gc_cpu = time.thread_time()
        else:
            pause = time.thread_time() - self._gc_cpu
            self.pauses.append((self._gc_start, pause, info["generation"]))

    def after_io_wait(self, timeout: float) -> None:
        self._parks_at_start = self._parks()  # read outside the turn's time
        self._turn_start = time.perf_counter()
        self._turn_cpu = time.thread_time()

    def before_io_wait(self, timeout: float) -> None:
        start = self._turn_start
        if start:
            duration = time.thread_time() - self._turn_cpu
            self.turns.append((start, duration, self._parks() - self._parks_at_start))

    def write(self, path: str) -> None:
        first = self.first_chat or 0.0
        last = self.last_chat + 0.005  # its delivery; not the clients' closes after it

        def within(start: float) -> bool:
            return first <= start <= last

        turns = [turn for turn in self.turns if within(turn[0])]
        pauses = [pause for pause in self.pauses if within(pause[0])]
        # The park burst: from the turn before the first that parked (its sessions'
        # tasks end there, counted once their sockets are held, a turn later) to the last.
        parked = [i for i, turn in enumerate(turns) if turn[2]]
        burst = turns[max(parked[0] - 1, 0) : parked[-1] + 1] if parked else []
        longest = sorted(turns, key=lambda turn: turn[1], reverse=True)[:20]
        summary = {
            "window_s": round(last - first, 3) if self.first_chat is not None else None,
            "turns": len(turns),
            "longest_turns_ms": [
                {"at_s": round(t - first, 3), "ms": round(d * 1000, 3), "parks": p}
                for t, d, p in longest
            ],
            # The turns that parked sessions (the first 40 of the window).
            "park_turns_ms": [
                {"at_s": round(t - first, 3), "ms": round(d * 1000, 3), "parks": p}
                for t, d, p in turns
                if p
            ][:40],
            "park_burst": {
                "turns": len(burst),
                "ms": round(sum(d for _, d, _ in burst) * 1000, 3),
                "longest_turn_ms": round(max((d for _, d, _ in burst), default=0.0) * 1000, 3),
            },
            "max_parks_per_turn": max((p for _, _, p in self.turns), default=0),
            "parks_in_window": sum(p for _, _, p in turns),
            "parks_total": sum(p for _, _, p in self.turns),
            "gc_pauses_in_window": {
                str(gen): {
                    "n": len(ds := [d for _, d, g in pauses if g == gen]),
                    "max_ms": round(max(ds, default=0.0) * 1000, 3),
                    "total_ms": round(sum(ds) * 1000, 3),
                }
                for gen in (0, 1, 2)
            },
        }
        with open(path, "w") as file:
            json.dump(summary, file, indent=1)
