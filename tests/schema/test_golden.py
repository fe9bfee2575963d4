"""The export of ``kinds_app.KindsRoom`` is the checked-in one; its module passes ``tsc --strict``.

After a deliberate change to the output, regenerate the golden files with::

    rm -r tests/schema/golden/kinds
    python -m trio_rooms.schema tests.schema.kinds_app:KindsRoom --out tests/schema/golden/kinds
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from trio_rooms.schema import export

from .kinds_app import KindsRoom

GOLDEN = Path(__file__).parent / "golden" / "kinds"
REGENERATE = (
    "rm -r tests/schema/golden/kinds && python -m trio_rooms.schema "
    "tests.schema.kinds_app:KindsRoom --out tests/schema/golden/kinds"
)


def test_the_export_matches_the_golden_files() -> None:
    """Every exported file equals its golden copy, and no golden file is left over."""
    files = export(KindsRoom).files()
    golden = {
        path.relative_to(GOLDEN).as_posix(): path.read_text(encoding="utf-8")
        for path in GOLDEN.rglob("*")
        if path.is_file()
    }
    assert sorted(golden) == sorted(files), f"the files differ; regenerate: {REGENERATE}"
    for name, text in files.items():
        assert golden[name] == text, f"{name} drifted; regenerate: {REGENERATE}"


def test_the_export_is_the_same_every_time() -> None:
    """Two exports of one room are identical, file for file."""
    assert export(KindsRoom).files() == export(KindsRoom).files()


def test_the_golden_module_passes_tsc_strict(node_dir: Path) -> None:
    """tsc --strict compiles the golden module and the type checks that use its types."""
    tsc = node_dir / "node_modules" / "typescript" / "bin" / "tsc"
    result = subprocess.run(
        ["node", str(tsc), "-p", str(node_dir / "tsconfig.json"), "--strict"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
