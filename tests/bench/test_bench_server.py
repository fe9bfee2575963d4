"""The benchmark's server starts the way ``nox -s bench`` runs it.

The campaign runs each server from the harness's folder, so the server is a module of
the repository's ``benchmarks`` package found through ``PYTHONPATH``; an import that works
only from the repository's root (or only as a script) shows here, not as a campaign that
skips trio_rooms.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def test_bench_server_imports_from_another_folder(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_server", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--transport" in done.stdout


def test_nox_bench_runs_the_server_as_that_module() -> None:
    # As a script (``python benchmarks/bench_server.py``), its relative imports fail and
    # the campaign skips both of trio_rooms' transports: session 12's `nox -s bench` did.
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert "-m benchmarks.bench_server" in noxfile
    assert "bench_server.py" not in noxfile
