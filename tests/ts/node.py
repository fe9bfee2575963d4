"""The TypeScript client's folder, and Node to build in it: on CI a missing node or
``npm ci`` fails the tests that need them; elsewhere they are skipped with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).parent.parent.parent / "clients" / "typescript"


def require_node() -> str:
    """The path of ``node``, once the client's npm dependencies are installed."""
    node = shutil.which("node")
    if node is None:
        reason = "node is missing (apt-get install nodejs npm)"
    elif not (CLIENT_DIR / "node_modules" / "esbuild").is_dir():
        reason = f"the npm dependencies are not installed: run npm ci in {CLIENT_DIR}"
    else:
        return node
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {reason}")
    pytest.skip(reason)


def bundle(node: str, entry: str, out: Path) -> None:
    """Bundle ``entry`` (relative to the client's folder) into ``out``, for browsers."""
    subprocess.run(
        [node, "scripts/bundle.mjs", entry, str(out)],
        cwd=CLIENT_DIR,
        check=True,
        timeout=120,
    )
