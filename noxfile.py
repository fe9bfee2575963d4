"""Every check of the project: ``nox`` runs lint, typecheck, ts and tests.

``nox -s bench`` (not a default session) runs the peer benchmark: see its docstring.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
# ts before tests: the demo bundle and browser client tests need its npm ci.
nox.options.sessions = ["lint", "typecheck", "ts", "tests", "changelog"]
nox.options.reuse_existing_virtualenvs = True

#: The npm project that runs the generated zod module for tests/schema.
SCHEMA_NODE = Path(__file__).parent / "tests" / "schema" / "node"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """pyright strict on the package and the tests, then --verifytypes."""
    session.install("-e", ".", "--group", "test")
    session.run("pyright")
    session.run("pyright", "--verifytypes", "trio_rooms", "--ignoreexternal")


@nox.session
def ts(session: nox.Session) -> None:
    """The TypeScript client: npm ci, tsc --strict, no `any` in its types, node's tests.

    The tests start a real server with this session's Python. Without node or npm the
    session is skipped, and fails on CI (``CI`` set).
    """
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        found = " and ".join(missing)
        reason = f"{found} not found: install Node 20 and npm (apt-get install nodejs npm)"
        if os.environ.get("CI"):
            session.error(f"CI is set and {reason}")
        session.skip(reason)
    session.install("-e", ".")
    python = str(Path(session.bin) / "python")
    with session.chdir("clients/typescript"):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
        session.run("npm", "run", "build", external=True)
        session.run("npm", "run", "check", external=True)
        session.run("npm", "test", external=True, env={"TRIO_ROOMS_PYTHON": python})


@nox.session
def tests(session: nox.Session) -> None:
    """pytest, warnings as errors; first the schema tests' npm project, with ``npm ci``."""
    session.install("-e", ".", "--group", "test")
    if shutil.which("npm") is None:
        session.warn("npm not found: the Node schema tests skip (in CI they fail)")
    else:
        npm_ci = ("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
        session.run(*npm_ci, "--prefix", str(SCHEMA_NODE), external=True)
    session.run("pytest", *session.posargs)


@nox.session
def changelog(session: nox.Session) -> None:
    """towncrier: the next release's changelog from ``changelog.d/``, as a draft."""
    session.install("towncrier")
    session.run("towncrier", "build", "--draft", "--version", "next")


#: The peer benchmark's harness (bench.py, campaign.py, the Node.js load generator and the
#: peers' servers): the shared one beside the repository when there is one, else the copy
#: in benchmarks/harness; TRIO_ROOMS_BENCH_DIR or --bench-dir override it.
SHARED_BENCH_DIR = Path(__file__).parent.parent / "shared" / "bench"
BENCH_DIR = (
    SHARED_BENCH_DIR
    if (SHARED_BENCH_DIR / "bench.py").is_file()
    else Path(__file__).parent / "benchmarks" / "harness"
)
#: The Python peers and the harness's pinned requirements each needs (the rest is the base).
PYTHON_PEERS = {"websockets": ("websockets",), "picows": ("picows", "aiofastnet", "uvloop")}
#: Every peer, in the order of the table (benchmarks/report.py SERVERS).
PEERS = ("trio_ws", "hypercorn_trio", "websockets", "picows", "node_ws", "bun")
#: (full, --quick) defaults of the campaign's knobs.
BENCH_DEFAULTS = {
    "rounds": (3, 1),
    "messages": (500, 200),
    "duration": (10.0, 2.0),
    "conns": (5000, 1000),
    "quiet_wait": (90.0, 2.0),
    "retries": (1, 0),
}


def _bench_options(posargs: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s bench --", description="the peer benchmark")
    parser.add_argument("--bench-dir", type=Path, help=f"the harness (default: {BENCH_DIR})")
    parser.add_argument("--quick", action="store_true", help="short runs, one round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (3; quick: 1)")
    parser.add_argument("--scenarios", default="s1,s2,s3,s4", help="comma-separated")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated")
    parser.add_argument("--messages", type=int, help="s1: chats per sender (500; quick: 200)")
    parser.add_argument("--duration", type=float, help="s2, s3: seconds (10; quick: 2)")
    parser.add_argument("--conns", type=int, help="s4: idle connections (5000; quick: 1000)")
    parser.add_argument("--quiet-wait", type=float, help="max s to wait for a quiet box per run")
    parser.add_argument("--retries", type=int, help="re-runs of a contended or failed run")
    parser.add_argument("--timeout", type=float, default=150.0, help="bound of one run (s)")
    parser.add_argument("--note", default="", help="a sentence for the README (e.g. the box)")
    parser.add_argument("--readme", action="store_true", help="refresh the README's section")
    options = parser.parse_args(posargs)
    for name, (full, quick) in BENCH_DEFAULTS.items():
        if getattr(options, name) is None:
            setattr(options, name, quick if options.quick else full)
    return options


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The peer benchmark: trio_rooms (embedded and behind hypercorn) against its peers.

    ``nox -s bench -- --quick`` takes a few minutes; ``-- --help`` lists the options.
    Copies the harness (``../shared/bench``, ``$TRIO_ROOMS_BENCH_DIR`` or ``--bench-dir``)
    into ``.nox/bench-cache``, installs its pinned requirements here and its npm packages
    there; a peer that cannot be built is skipped with the reason. Then runs s1 to s4 in
    one campaign of interleaved rounds, and writes ``benchmarks/results/<date>-nox.md``,
    ``.jsonl`` and ``<date>-ratios.png`` (``--readme``: the README's section too).
    """
    options = _bench_options(session.posargs)
    source = options.bench_dir or Path(os.environ.get("TRIO_ROOMS_BENCH_DIR") or BENCH_DIR)
    if not (source / "bench.py").is_file():
        session.error(f"no benchmark harness (bench.py) in {source}: give -- --bench-dir PATH")
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        session.error(f"{' and '.join(missing)} not found: the load generator runs on Node.js")
    root = Path(__file__).parent
    harness = root / ".nox" / "bench-cache" / "harness"
    shutil.copytree(
        source,
        harness,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("node_modules", ".venv", "results", "__pycache__"),
    )
    for path in harness.rglob("*"):  # the shared copy is read-only; npm writes beside it
        path.chmod(path.stat().st_mode | 0o200)
    pins = _requirements(harness / "requirements.txt")
    peer_pins = {pin for names in PYTHON_PEERS.values() for pin in names}
    base = [line for name, line in pins.items() if name not in peer_pins and name != "py-spy"]
    session.install("-e", ".", *base, "matplotlib")

    peers = [p for p in options.peers.split(",") if p]
    skipped: dict[str, str] = {}
    for peer, names in PYTHON_PEERS.items():
        if peer in peers:
            try:
                session.install(*(pins.get(name, name) for name in names))
            except nox.command.CommandFailed:
                skipped[peer] = f"pip could not install {', '.join(names)}"
    _npm_ci(session, harness / "node")  # the load generator's `ws`, and the node_ws peer's
    if "bun" in peers:
        reason = _build_bun(session, harness / "bun")
        if reason:
            skipped["bun"] = reason

    date = datetime.date.today().isoformat()
    results = root / "benchmarks" / "results"
    jsonl = results / f"{date}-nox.jsonl"
    loadgen = [
        *("--messages", str(options.messages)),
        *("--duration", str(options.duration)),
        *("--conns", str(options.conns)),
    ]
    meta = {
        "record": "campaign",
        "date": date,
        "machine": _machine(),
        "rounds": options.rounds,
        "options": " ".join(loadgen),
        "note": options.note,
        "harness": str(source),
    }
    with jsonl.open("w", encoding="utf-8") as file:
        file.write(json.dumps(meta) + "\n")
        for peer, reason in skipped.items():
            file.write(json.dumps({"record": "skipped", "server": peer, "reason": reason}) + "\n")

    python = shlex.quote(str(Path(session.bin) / "python"))
    # As a module of the repository's `benchmarks` package (its imports are relative),
    # from the harness's folder, where the campaign runs each server.
    pythonpath = shlex.quote(str(root))
    ours = f"env PYTHONPATH={pythonpath} {python} -m benchmarks.bench_server --port {{port}}"
    session.run(
        "python",
        str(harness / "campaign.py"),
        *("--servers", ",".join(p for p in peers if p not in skipped)),
        *("--server-cmd", f"trio_rooms={ours}"),
        *("--server-cmd", f"trio_rooms_hypercorn={ours} --transport hypercorn"),
        *("--scenarios", options.scenarios),
        *("--reps", str(options.rounds)),
        *("--quiet-wait", str(options.quiet_wait)),
        *("--retries", str(options.retries)),
        *("--timeout", str(options.timeout)),
        *("--out", str(jsonl)),
        "--",
        *loadgen,
    )
    report = [str(jsonl), "--md", str(results / f"{date}-nox.md")]
    report += ["--png", str(results / f"{date}-ratios.png")]
    session.run(
        "python",
        "-m",
        "benchmarks.report_cli",
        *report,
        *(["--readme", "README.md"] if options.readme else []),
    )


def _requirements(path: Path) -> dict[str, str]:
    """Name -> pinned requirement line of the harness's requirements.txt."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = line.split("==", 1)[0].split("[", 1)[0].strip().lower()
            pins[name] = line
    return pins


def _npm_ci(session: nox.Session, folder: Path) -> None:
    """``npm ci`` in ``folder`` unless its node_modules already match the lock file."""
    lock = folder / "package-lock.json"
    stamp = folder / "node_modules" / ".bench-lock"
    if stamp.is_file() and stamp.read_bytes() == lock.read_bytes():
        return
    session.run("npm", "ci", "--no-audit", "--no-fund", "--prefix", str(folder), external=True)
    stamp.write_bytes(lock.read_bytes())


def _build_bun(session: nox.Session, folder: Path) -> str | None:
    """Install Bun from npm into ``folder``; the reason it cannot run here, or None."""
    try:
        _npm_ci(session, folder)
    except nox.command.CommandFailed:
        return "npm could not install the `bun` package"
    modules = folder / "node_modules"
    # where bench.py looks: the platform package, or where bun's postinstall moved it
    candidates = [
        modules / "@oven" / "bun-linux-x64" / "bin" / "bun",
        modules / "bun" / "bin" / "bun.exe",
    ]
    binary = next((p for p in candidates if p.is_file() and p.stat().st_size > 1_000_000), None)
    if binary is None:
        return "the `bun` npm package brought no Bun binary for this platform"
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, timeout=30, check=False)
    except OSError as exc:
        return f"the Bun binary does not start: {exc}"
    if done.returncode == 0:
        return None
    avx2 = "avx2" in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    cause = "" if avx2 else " (this CPU has no AVX2, which Bun's x64 build needs)"
    return f"the Bun binary exits with {done.returncode} on `bun --version`{cause}"


def _machine() -> str:
    """The box in one phrase: CPU model, cores, memory, OS, Python and Node.js versions."""
    cpuinfo = Path("/proc/cpuinfo")
    model = platform.processor() or platform.machine()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        kib = int(meminfo.read_text(encoding="utf-8").split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return (
        f"{model}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Node.js {node.stdout.strip()}"
    )
