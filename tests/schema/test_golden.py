"""The exports of the golden rooms are the checked-in ones; their modules pass ``tsc --strict``.

``kinds_app.KindsRoom`` has every kind of field, ``requests_app.RequestsRoom`` requests
and their replies, ``presence_app.PresenceRoom`` presence metadata. After a deliberate
change to the output, regenerate the golden files with (``kinds`` and ``KindsRoom``,
``requests`` and ``RequestsRoom``, or ``presence`` and ``PresenceRoom``)::

    rm -r tests/schema/golden/kinds
    python -m trio_rooms.schema tests.schema.kinds_app:KindsRoom --out tests/schema/golden/kinds
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from trio_rooms import Room
from trio_rooms.schema import export

from .kinds_app import KindsRoom
from .presence_app import PresenceRoom
from .requests_app import RequestsRoom

GOLDEN = Path(__file__).parent / "golden"
ROOMS = pytest.mark.parametrize(
    ("name", "room"),
    [("kinds", KindsRoom), ("requests", RequestsRoom), ("presence", PresenceRoom)],
    ids=["kinds", "requests", "presence"],
)


def _regenerate(name: str, room: type[Room[Any]]) -> str:
    return (
        f"rm -r tests/schema/golden/{name} && python -m trio_rooms.schema "
        f"{room.__module__}:{room.__qualname__} --out tests/schema/golden/{name}"
    )


@ROOMS
def test_the_export_matches_the_golden_files(name: str, room: type[Room[Any]]) -> None:
    """Every exported file equals its golden copy, and no golden file is left over."""
    files = export(room).files()
    folder = GOLDEN / name
    golden = {
        path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
        for path in folder.rglob("*")
        if path.is_file()
    }
    regenerate = _regenerate(name, room)
    assert sorted(golden) == sorted(files), f"the files differ; regenerate: {regenerate}"
    for file, text in files.items():
        assert golden[file] == text, f"{file} drifted; regenerate: {regenerate}"


@ROOMS
def test_the_export_is_the_same_every_time(name: str, room: type[Room[Any]]) -> None:
    """Two exports of one room are identical, file for file."""
    assert export(room).files() == export(room).files()


def test_the_golden_module_passes_tsc_strict(node_dir: Path) -> None:
    """tsc --strict compiles the golden modules and the type checks that use their types."""
    tsc = node_dir / "node_modules" / "typescript" / "bin" / "tsc"
    result = subprocess.run(
        ["node", str(tsc), "-p", str(node_dir / "tsconfig.json"), "--strict"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
