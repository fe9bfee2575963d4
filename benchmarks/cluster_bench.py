"""Cross-node fan-out and the backplane's added latency, against one node in the same run.

    python -m benchmarks.cluster_bench [--rounds 3] [--clients 200] [--messages 500]

Each round, interleaved:

- ``single``: one `bench_server`, every client on it, ``--senders`` chatting;
- ``cluster``: a fresh ``redis-server`` and two `bench_server --redis` nodes, the
  clients split evenly over them, the senders all on the first node, so half the
  deliveries cross the backplane;
- ``latency``: client 0 of ``--latency-clients`` sends a timestamped chat 20 times
  a second, one node and then two; latency per recipient, by the node it sits on.

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
import time
from collections.abc import Generator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import cast

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
def _process(args: Sequence[str], port: int) -> Generator[None]:
    process = subprocess.Popen(
        args, cwd=HERE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _nodes(count: int, redis: bool) -> Generator[list[int]]:
    """``count`` bench servers (on a fresh Redis when ``redis``): their ports."""
    with ExitStack() as stack:
        extra: list[str] = []
        if redis:
            redis_port = _free_port()
            directory = stack.enter_context(tempfile.TemporaryDirectory())
            command = ["redis-server", "--port", str(redis_port), "--save", "", "--dir", directory]
            stack.enter_context(_process(command, redis_port))
            extra = ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
        ports: list[int] = []
        for _ in range(count):
            port = _free_port()
            command = [sys.executable, "-m", "benchmarks.bench_server", "--port", str(port)]
            stack.enter_context(_process([*command, *extra], port))
            ports.append(port)
        yield ports


def _loadgen(ports: list[int], node_modules: Path, *options: str) -> dict[str, object]:
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    command = ["node", str(LOADGEN), "--ports", ",".join(map(str, ports)), *options]
    output = subprocess.run(command, env=env, capture_output=True, check=True, timeout=300)
    for line in output.stdout.decode().splitlines():
        if line.startswith("RESULT "):
            result: dict[str, object] = json.loads(line[len("RESULT ") :])
            return result
    raise RuntimeError(f"no RESULT from the load generator: {output.stderr.decode()}")


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
    parser.add_argument("--node-modules", type=Path, default=DEFAULT_NODE_MODULES)
    parser.add_argument("--out", type=Path, help="append each round as a JSON line")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not installed")
    rounds: list[dict[str, object]] = []
    for number in range(args.rounds):
        result = _round(args, args.node_modules)
        rounds.append(result)
        print(f"round {number + 1}: {json.dumps(result)}", flush=True)
        if args.out is not None:
            with args.out.open("a") as out:
                out.write(json.dumps(result) + "\n")

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
