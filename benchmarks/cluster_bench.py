"""Cross-node fan-out and the backplane's added latency, against one node in the same run.

    python -m benchmarks.cluster_bench [--rounds 3] [--clients 200] [--messages 500]

Each round, interleaved:

- ``single``: one `bench_server`, every client on it, ``--senders`` chatting;
- ``cluster``: a fresh ``redis-server`` and two `bench_server --redis` nodes, the
  clients split evenly over them, the senders all on the first node, so half the
  deliveries cross the backplane;
- ``latency``: client 0 of ``--latency-clients`` sends a timestamped chat 20 times
  a second, one node and then two; latency per recipient, by the node it sits on.

With ``--single-owner``, the rounds measure the single-owner mode instead (two
`bench_server --cluster` nodes on a fresh ``redis-server``; node 1 owns the room, node
2 relays its clients to it):

- ``owner_latency``: ``--clients`` split over the nodes, node 1's client 0 sending a
  timestamped chat 20 times a second: latency on the owner against on the relaying node;
- ``echo``: ``--echo-clients`` each pinging and waiting for its pong for 5 s, on the
  same nodes, in three variants (each round starting with the next one: the box's load
  drifts): ``echo_owner``, all on the owner; ``echo_owner_resumable``, all on the owner
  with resumable sessions (``?resume=&seen=0``), as the owner runs every relayed
  session, hence the fair baseline of ``echo_relayed``, all on the relaying node. With
  ``--cpu``, per round trip of each, in the steady state only (the load generator's
  STARTED to STOPPED: not its connecting), for each node, redis-server and the load
  generator, from ``/proc``: the CPU spent (user and system, in µs; ``sys_us`` the
  system part), the ``write`` calls (``writes``: both transports and the Redis
  connections write with ``os.write``; ``sendto`` is not counted) and the waits
  (``waits``: voluntary context switches, mostly its event loop blocking in
  ``epoll_wait``). On a box whose cores are busy, a round trip's rate at a given
  ``--echo-clients`` follows the CPU of all four processes per trip, summed: every
  process waits for the others' turns;
- ``failover``: a client on each node, node 1 killed with SIGKILL: the seconds until a
  client of node 2 gets its pong again (node 2 owning the room by then).

``--echo-only`` leaves out ``owner_latency`` and ``failover``.

Needs ``redis-server`` and Node.js with the ``ws`` package (``npm ci`` in
``../shared/bench/node``; ``--node-modules`` points elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final, cast

HERE = Path(__file__).parent
LOADGEN = HERE / "cluster_loadgen.js"
DEFAULT_NODE_MODULES = HERE.parent.parent / "shared" / "bench" / "node" / "node_modules"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"nothing listens on port {port}")


@contextmanager
def _process(args: Sequence[str], port: int) -> Generator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        args, cwd=HERE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _nodes(count: int, redis: bool, flag: str = "--redis") -> Generator[list[int]]:
    """``count`` bench servers (on a fresh Redis when ``redis``, joined by ``flag``)."""
    with _node_processes(count, redis, flag) as nodes:
        yield [port for port, _ in nodes]


@contextmanager
def _node_processes(
    count: int, redis: bool, flag: str = "--redis"
) -> Generator[list[tuple[int, subprocess.Popen[bytes]]]]:
    """``count`` bench servers (on a fresh Redis when ``redis``): ports and processes."""
    with _all_processes(count, redis, flag) as (nodes, _):
        yield nodes


@contextmanager
def _all_processes(
    count: int, redis: bool, flag: str = "--redis"
) -> Generator[tuple[list[tuple[int, subprocess.Popen[bytes]]], subprocess.Popen[bytes] | None]]:
    """As `_node_processes`, and the redis-server's process (None without ``redis``)."""
    with ExitStack() as stack:
        extra: list[str] = []
        server: subprocess.Popen[bytes] | None = None
        if redis:
            redis_port = _free_port()
            directory = stack.enter_context(tempfile.TemporaryDirectory())
            command = ["redis-server", "--port", str(redis_port), "--save", "", "--dir", directory]
            server = stack.enter_context(_process(command, redis_port))
            extra = [flag, f"redis://127.0.0.1:{redis_port}/0"]
        nodes: list[tuple[int, subprocess.Popen[bytes]]] = []
        for _ in range(count):
            port = _free_port()
            command = [sys.executable, "-m", "benchmarks.bench_server", "--port", str(port)]
            nodes.append((port, stack.enter_context(_process([*command, *extra], port))))
        yield nodes, server


#: What `_usage` counts of a process, and how a per-trip figure of it is rounded.
_USAGE: Final = {"cpu_us": 1, "sys_us": 1, "writes": 3, "waits": 3}


def _usage(pid: int) -> dict[str, float]:
    """What process ``pid`` has used so far, from Linux's /proc (see `_USAGE`): CPU and
    system CPU in µs, ``write`` calls, voluntary context switches."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]) * tick_us, int(fields[12]) * tick_us
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    waits = next(line for line in status if line.startswith("voluntary_ctxt_switches:"))
    return {
        "cpu_us": user + system,
        "sys_us": system,
        "writes": float(io["syscw"]),
        "waits": float(waits.split()[1]),
    }


def _echo(
    ports: list[int], node_modules: Path, options: Sequence[str], pids: dict[str, int] | None
) -> dict[str, object]:
    """An echo run's result; with ``pids``, what each process and the load generator
    used per round trip (``cpu_us`` and the rest of `_USAGE`), from the load
    generator's STARTED to its STOPPED."""
    marks: dict[str, Callable[[int], None]] = {}
    before: dict[str, dict[str, float]] = {}
    after: dict[str, dict[str, float]] = {}
    if pids is not None:

        def measure(into: dict[str, dict[str, float]], loadgen: int) -> None:
            into.update({name: _usage(pid) for name, pid in {**pids, "loadgen": loadgen}.items()})

        marks["STARTED"] = lambda loadgen: measure(before, loadgen)
        marks["STOPPED"] = lambda loadgen: measure(after, loadgen)
    result = _loadgen(ports, node_modules, *options, marks=marks)
    if pids is not None:
        trips = _number(result, "trips")
        for figure, digits in _USAGE.items():
            result[figure] = {
                name: round((after[name][figure] - before[name][figure]) / trips, digits)
                for name in before
            }
    return result


def _loadgen(
    ports: list[int],
    node_modules: Path,
    *options: str,
    marks: dict[str, Callable[[int], None]] | None = None,
) -> dict[str, object]:
    """The load generator's RESULT; each of ``marks`` is called with its process id as
    it prints that line."""
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    command = ["node", str(LOADGEN), "--ports", ",".join(map(str, ports)), *options]
    marks = marks or {}
    with (
        tempfile.TemporaryFile("w+") as errors,
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True) as run,
    ):
        killer = threading.Timer(300, run.kill)  # the bound `subprocess.run` had
        killer.start()
        try:
            assert run.stdout is not None
            for line in run.stdout:
                mark = marks.get(line.strip())
                if mark is not None:
                    mark(run.pid)
                elif line.startswith("RESULT "):
                    result: dict[str, object] = json.loads(line[len("RESULT ") :])
                    return result
        finally:
            killer.cancel()
        errors.seek(0)
        raise RuntimeError(f"no RESULT from the load generator: {errors.read()}")


def _round(args: argparse.Namespace, node_modules: Path) -> dict[str, object]:
    fanout = [
        "--mode",
        "fanout",
        "--clients",
        str(args.clients),
        "--senders",
        str(args.senders),
        "--messages",
        str(args.messages),
    ]
    # Few clients: with many, the load generator's own turn through every client's
    # message dominates what is measured.
    latency = ["--mode", "latency", "--clients", str(args.latency_clients), "--rate", "20"]
    result: dict[str, object] = {}
    with _nodes(1, redis=False) as ports:
        result["single_fanout"] = _loadgen(ports, node_modules, *fanout)
    with _nodes(2, redis=True) as ports:
        result["cluster_fanout"] = _loadgen(ports, node_modules, *fanout)
    with _nodes(1, redis=False) as ports:
        result["single_latency"] = _loadgen(ports, node_modules, *latency)
    with _nodes(2, redis=True) as ports:
        result["cluster_latency"] = _loadgen(ports, node_modules, *latency)
    return result


#: The echo variants: name, the clients' node (0: the owner), load generator options.
_ECHOES: Final[tuple[tuple[str, int, tuple[str, ...]], ...]] = (
    ("echo_owner", 0, ()),
    ("echo_owner_resumable", 0, ("--resume", "1")),
    ("echo_relayed", 1, ()),
)


def _owner_round(args: argparse.Namespace, node_modules: Path, number: int) -> dict[str, object]:
    """One round of the single-owner figures (see the module's docstring)."""
    result: dict[str, object] = {}
    latency = ["--mode", "latency", "--clients", str(args.clients), "--rate", "20"]
    echo = ["--mode", "echo", "--clients", str(args.echo_clients), "--duration", "5"]
    if not args.echo_only:
        with _nodes(2, redis=True, flag="--cluster") as ports:
            result["owner_latency"] = _loadgen(ports, node_modules, *latency)
    with _all_processes(2, redis=True, flag="--cluster") as (nodes, server):
        ports = [port for port, _ in nodes]
        assert server is not None
        # Node 1 owns the room (the load generator's first client is its).
        pids = {"owner": nodes[0][1].pid, "client": nodes[1][1].pid, "redis": server.pid}
        # Each round starts with the next variant: the box's load drifts.
        start = number % len(_ECHOES)
        for name, on, extra in _ECHOES[start:] + _ECHOES[:start]:
            options = (*echo, "--on", str(on), *extra)
            result[name] = _echo(ports, node_modules, options, pids if args.cpu else None)
    if not args.echo_only:
        with _node_processes(2, redis=True, flag="--cluster") as nodes:
            result["failover"] = _failover([port for port, _ in nodes], nodes[0][1], node_modules)
    return result


def _failover(ports: list[int], owner: subprocess.Popen[bytes], node_modules: Path) -> object:
    """Kill the owner with SIGKILL once the load generator is ready: its result."""
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    command = ["node", str(LOADGEN), "--ports", ",".join(map(str, ports)), "--mode", "failover"]
    command += ["--timeout", "60"]
    with subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as loadgen:
        assert loadgen.stdin is not None
        assert loadgen.stdout is not None
        for line in loadgen.stdout:
            if line.startswith("READY"):
                owner.kill()
                loadgen.stdin.write("killed\n")
                loadgen.stdin.flush()
            elif line.startswith("RESULT "):
                result: object = json.loads(line[len("RESULT ") :])
                return result
    raise RuntimeError("no RESULT from the failover load generator")


def _owner_summary(rounds: list[dict[str, object]]) -> None:
    def median(*path: str) -> float:
        return statistics.median(_number(r, *path) for r in rounds)

    if "owner_latency" in rounds[0]:
        for index, where in enumerate(("owner", "relaying node")):
            p50, p99 = (
                statistics.median(_node_latency(r, "owner_latency", index, figure) for r in rounds)
                for figure in ("p50_ms", "p99_ms")
            )
            print(f"latency, client on the {where}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    owner = median("echo_owner", "round_trips_per_s")
    resumable = median("echo_owner_resumable", "round_trips_per_s")
    relayed = median("echo_relayed", "round_trips_per_s")
    print(
        f"echo round trips/s: owner {owner:,.0f}, owner resumable {resumable:,.0f}; "
        f"relayed {relayed:,.0f} ({relayed / resumable:.2f}x resumable, "
        f"{relayed / owner:.2f}x plain)"
    )
    # Each round's own ratios too: the box's load drifts between rounds.
    rate = "round_trips_per_s"
    for name in ("echo_owner_resumable", "echo_owner"):
        each = " ".join(
            f"{_number(r, 'echo_relayed', rate) / _number(r, name, rate):.2f}" for r in rounds
        )
        print(f"relayed / {name}, each round: {each}")
    relayed_round = _get(rounds[0], "echo_relayed")
    if isinstance(relayed_round, dict) and "cpu_us" in relayed_round:  # (--cpu)
        processes = ("owner", "client", "redis")
        if "sys_us" in relayed_round:  # (rounds of the bench before these figures)
            processes += ("loadgen",)
        for name, _, _ in _ECHOES:
            cpu = ", ".join(f"{p} {median(name, 'cpu_us', p):.1f}" for p in processes)
            print(f"CPU µs per round trip, {name}: {cpu}")
            if "sys_us" not in relayed_round:
                continue
            per_trip = "; ".join(
                f"{p} {median(name, 'sys_us', p):.1f} µs system, "
                f"{median(name, 'writes', p):.2f} writes, {median(name, 'waits', p):.2f} waits"
                for p in processes
            )
            print(f"  per round trip: {per_trip}")
    if "failover" in rounds[0]:
        print(f"failover after kill -9: {median('failover', 'failover_s'):.2f} s")


def _get(value: object, *path: str) -> object:
    """``value[path[0]][path[1]]...`` through the decoded JSON of a result."""
    for key in path:
        if not isinstance(value, dict):
            raise KeyError(key)
        value = value[key]  # pyright: ignore[reportUnknownVariableType]
    return value  # pyright: ignore[reportUnknownVariableType]


def _number(value: object, *path: str) -> float:
    found = _get(value, *path)
    assert isinstance(found, int | float), found
    return float(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--latency-clients", type=int, default=20)
    parser.add_argument("--single-owner", action="store_true", help="the single-owner figures")
    parser.add_argument("--echo-clients", type=int, default=20)
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="with --single-owner: each process's CPU per echo round trip (Linux /proc)",
    )
    parser.add_argument(
        "--echo-only",
        action="store_true",
        help="with --single-owner: the echo figures only (no latency, no failover)",
    )
    parser.add_argument("--node-modules", type=Path, default=DEFAULT_NODE_MODULES)
    parser.add_argument("--out", type=Path, help="append each round as a JSON line")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not installed")
    rounds: list[dict[str, object]] = []
    for number in range(args.rounds):
        if args.single_owner:
            result = _owner_round(args, args.node_modules, number)
        else:
            result = _round(args, args.node_modules)
        rounds.append(result)
        print(f"round {number + 1}: {json.dumps(result)}", flush=True)
        if args.out is not None:
            with args.out.open("a") as out:
                out.write(json.dumps(result) + "\n")

    if args.single_owner:
        _owner_summary(rounds)
        return

    def median(*path: str) -> float:
        return statistics.median(_number(r, *path) for r in rounds)

    single = median("single_fanout", "deliveries_per_s")
    cluster = median("cluster_fanout", "deliveries_per_s")
    print(f"fan-out deliveries/s: one node {single:,.0f}; two nodes {cluster:,.0f}")
    print(f"two nodes / one node: {cluster / single:.2f}")
    for key in ("single_latency", "cluster_latency"):
        nodes = _get(rounds[0], key, "nodes")
        assert isinstance(nodes, list)
        for index in range(len(nodes)):  # pyright: ignore[reportUnknownArgumentType]
            p50 = statistics.median(_node_latency(r, key, index, "p50_ms") for r in rounds)
            p99 = statistics.median(_node_latency(r, key, index, "p99_ms") for r in rounds)
            print(f"{key} node {index + 1}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def _node_latency(result: object, key: str, index: int, figure: str) -> float:
    """A latency figure of the ``index``-th node (the first one has the sender)."""
    nodes = _get(result, key, "nodes")
    assert isinstance(nodes, list)
    return _number(cast("list[object]", nodes)[index], figure)


if __name__ == "__main__":
    main()
