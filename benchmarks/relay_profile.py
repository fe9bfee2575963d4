"""Python calls per relayed echo round trip on the client's node, from cProfile.

    python -m benchmarks.relay_profile [--runs 3] [--clients 20] [--duration 5]

Each run: a fresh ``redis-server``, node 1 (`bench_server --cluster`) owning the room
and node 2, the client's node, the same server started by this module (``--node``):
the load generator's echo (``cluster_loadgen.js --mode echo --on 1``) pings the owner
through node 2 twice. The first echo runs unprofiled, for what node 2 and Redis spend
per round trip (CPU, ``write`` calls and waits, as ``cluster_bench --cpu`` measures
them, from ``/proc``); the second with node 2's profiler on from the load generator's
STARTED to its STOPPED (SIGUSR1, SIGUSR2), for its Python calls per round trip (a
coroutine's every resume counts as a call), those of the functions that tell how a
trip is scheduled (socket waits, epoll changes, task reschedules, epoll waits), and the
functions with the most calls. Calls per trip are the steady figure to compare trees
by: a rate or a CPU time swings with the shared box's load, a count much less.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Final

import trio

from .bench_server import serve
from .cluster_bench import (  # the runner's parts, shared
    DEFAULT_NODE_MODULES,
    _free_port,  # pyright: ignore[reportPrivateUsage]
    _loadgen,  # pyright: ignore[reportPrivateUsage]
    _number,  # pyright: ignore[reportPrivateUsage]
    _process,  # pyright: ignore[reportPrivateUsage]
    _usage,  # pyright: ignore[reportPrivateUsage]
)

#: What the figures count, by their pstats keys' file names (``~``: built in) and
#: functions (trio's public wrappers in ``_generated_*.py`` are left out: one call each).
_COUNTED: Final = {
    "wait_readable": ("_io_epoll.py", "wait_readable"),
    "epoll.modify": ("~", "<method 'modify' of 'select.epoll' objects>"),
    "epoll.register": ("~", "<method 'register' of 'select.epoll' objects>"),
    "epoll.poll": ("~", "<method 'poll' of 'select.epoll' objects>"),
    "reschedule": ("_run.py", "reschedule"),
    "os.read": ("~", "<built-in method posix.read>"),
    "os.write": ("~", "<built-in method posix.write>"),
}


def _serve_profiled(port: int, url: str, out: Path) -> None:
    """Run a cluster `bench_server` on ``port``; SIGUSR1 starts the profiler, SIGUSR2
    stops it and writes its stats to ``out``."""
    profile = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profile.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profile.disable()
        written = out.with_suffix(".part")
        profile.dump_stats(written)
        written.replace(out)  # whole, once there

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    try:
        trio.run(serve, port, "embedded", None, None, True, None, False, url)
    except* KeyboardInterrupt:
        pass


def _figures(stats: pstats.Stats, trips: float, top: int) -> dict[str, object]:
    """Calls per trip: in all, of `_COUNTED`, and of the ``top`` most called functions."""
    # (file, line, function): (primitive calls, calls, own time, cumulative time, callers)
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = vars(stats)["stats"]
    total = sum(calls for _, calls, _, _, _ in table.values())
    counted = dict.fromkeys(_COUNTED, 0.0)
    for (file, _, function), (_, calls, _, _, _) in table.items():
        for name, (file_end, function_name) in _COUNTED.items():
            if Path(file).name == file_end and function == function_name:
                counted[name] += calls
    ranked = sorted(table.items(), key=lambda item: -item[1][1])[:top]
    return {
        "calls": round(total / trips, 2),
        **{name: round(calls / trips, 3) for name, calls in counted.items()},
        "top": [
            f"{calls / trips:6.2f} {Path(file).name}:{line} {function}"
            for (file, line, function), (_, calls, _, _, _) in ranked
        ],
    }


def _run(node_modules: Path, clients: int, duration: float, top: int) -> dict[str, object]:
    echo = ["--mode", "echo", "--clients", str(clients), "--duration", str(duration), "--on", "1"]
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis_port = _free_port()
        redis = stack.enter_context(
            _process(
                ["redis-server", "--port", str(redis_port), "--save", "", "--dir", str(directory)],
                redis_port,
            )
        )
        url = f"redis://127.0.0.1:{redis_port}/0"
        owner_port, client_port = _free_port(), _free_port()
        owner = [sys.executable, "-m", "benchmarks.bench_server", "--port", str(owner_port)]
        stack.enter_context(_process([*owner, "--cluster", url], owner_port))
        out = directory / "client.pstats"
        profiled = [sys.executable, "-m", "benchmarks.relay_profile", "--node", str(client_port)]
        node = stack.enter_context(_process([*profiled, url, str(out)], client_port))
        pids = {"client": node.pid, "redis": redis.pid}
        before: dict[str, dict[str, float]] = {}
        after: dict[str, dict[str, float]] = {}

        def measure(into: dict[str, dict[str, float]]) -> Callable[[int], None]:
            return lambda _: into.update({name: _usage(pid) for name, pid in pids.items()})

        ports = [owner_port, client_port]
        plain = _loadgen(
            ports,
            node_modules,
            *echo,
            marks={"STARTED": measure(before), "STOPPED": measure(after)},
        )
        trips = _number(plain, "trips")
        result: dict[str, object] = {"trips": trips, "trips_per_s": plain["round_trips_per_s"]}
        for name in pids:
            for figure in ("cpu_us", "sys_us", "writes", "waits"):
                result[f"{name}_{figure}"] = round(
                    (after[name][figure] - before[name][figure]) / trips, 2
                )

        def signal_node(signum: int) -> Callable[[int], None]:
            return lambda _: os.kill(node.pid, signum)

        marks = {"STARTED": signal_node(signal.SIGUSR1), "STOPPED": signal_node(signal.SIGUSR2)}
        profiled_run = _loadgen(ports, node_modules, *echo, marks=marks)
        profiled_trips = _number(profiled_run, "trips")
        deadline = time.monotonic() + 10
        # The node writes its stats as it handles SIGUSR2, in its own time.
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = pstats.Stats(str(out))
        result["profiled_trips"] = profiled_trips
        result.update(_figures(stats, profiled_trips, top))
        return result


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--node":
        _serve_profiled(int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=40, help="the most called functions shown")
    parser.add_argument("--node-modules", type=Path, default=DEFAULT_NODE_MODULES)
    parser.add_argument("--out", type=Path, help="append each run as a JSON line")
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    for number in range(args.runs):
        result = _run(args.node_modules, args.clients, args.duration, args.top)
        runs.append(result)
        top = result.pop("top")
        print(f"run {number + 1}: {json.dumps(result)}", flush=True)
        if args.out is not None:
            with args.out.open("a") as out:
                out.write(json.dumps({**result, "top": top}) + "\n")
        if number == args.runs - 1:
            assert isinstance(top, list)
            print("calls per trip, the most called (last run):")
            for line in top:  # pyright: ignore[reportUnknownVariableType]
                print(f"  {line}")
    keys = [key for key, value in runs[0].items() if isinstance(value, int | float)]
    medians = {key: statistics.median(_number(run, key) for run in runs) for key in keys}
    print(f"medians: {json.dumps(medians)}")


if __name__ == "__main__":
    main()
