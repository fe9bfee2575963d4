"""Pyright strict accepts the right programs and flags exactly the marked lines of the wrong ones.

A ``wrong_*.py`` file marks each line pyright must flag with ``# expect: rule`` (several
rules, one per diagnostic, separated by commas), at the end of the line or alone on the
line before it. The project's pyright config excludes those files, so they are checked
here with the project's settings through a temporary config.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import NotRequired, TypedDict, cast

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RIGHT_FILES = sorted(HERE.glob("right_*.py"))
WRONG_FILES = sorted(HERE.glob("wrong_*.py"))

_EXPECT = re.compile(r"#\s*expect:\s*(?P<rules>\w+(?:\s*,\s*\w+)*)\s*$")
_PATH_KEYS = ("stubPath", "typeshedPath", "venvPath")


class _Position(TypedDict):
    line: int
    character: int


class _Range(TypedDict):
    start: _Position
    end: _Position


class _Diagnostic(TypedDict):
    file: str
    severity: str
    message: str
    range: NotRequired[_Range]
    rule: NotRequired[str]


class _Summary(TypedDict):
    filesAnalyzed: int
    errorCount: int


class _Symbol(TypedDict):
    name: str
    isTypeKnown: bool
    diagnostics: list[_Diagnostic]


class _Completeness(TypedDict):
    packageRootDirectory: str
    completenessScore: float
    symbols: list[_Symbol]


class _Report(TypedDict):
    generalDiagnostics: list[_Diagnostic]
    summary: _Summary
    typeCompleteness: NotRequired[_Completeness]


def _pyright(*args: str) -> _Report:
    """Run the pyright of this environment with ``--outputjson`` and return its report."""
    # --verifytypes ignores --pythonpath and asks the first python on PATH for its
    # search paths: put this environment's first so it sees the same packages.
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # 0: no errors, 1: errors reported; anything else means pyright itself failed.
    assert result.returncode in (0, 1), f"pyright failed:\n{result.stdout}\n{result.stderr}"
    report: _Report = json.loads(result.stdout)
    return report


def _strict_config(directory: Path) -> Path:
    """The project's [tool.pyright] settings without its include/exclude, as a config file."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    settings: dict[str, object] = dict(pyproject["tool"]["pyright"])
    settings.pop("include", None)
    settings.pop("exclude", None)
    for key in _PATH_KEYS:
        value = settings.get(key)
        if isinstance(value, str):
            settings[key] = str(ROOT / value)
    extra = cast("list[str]", settings.get("extraPaths", []))
    settings["extraPaths"] = [str(ROOT), *(str(ROOT / path) for path in extra)]
    assert settings.get("typeCheckingMode") == "strict"
    config = directory / "pyrightconfig.json"
    config.write_text(json.dumps(settings))
    return config


def _expected(path: Path) -> Counter[tuple[int, str]]:
    """The (line, rule) pairs the ``# expect:`` markers of ``path`` announce.

    A marker ending a line of code is about that line; a marker on a line of its own is
    about the next line of code (for statements too long to carry it).
    """
    expected: Counter[tuple[int, str]] = Counter()
    pending: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECT.search(line)
        rules = [rule.strip() for rule in match["rules"].split(",")] if match else []
        code = line.split("#", 1)[0].strip()
        if not code:
            pending.extend(rules)
            continue
        for rule in (*pending, *rules):
            expected[number, rule] += 1
        pending = []
    assert not pending, f"{path.name}: a marker {pending} precedes no line of code"
    return expected


def _line(diagnostic: _Diagnostic) -> int:
    return diagnostic["range"]["start"]["line"] + 1 if "range" in diagnostic else 0


def _found(diagnostics: list[_Diagnostic]) -> Counter[tuple[int, str]]:
    return Counter((_line(d), d.get("rule", "<no rule>")) for d in diagnostics)


def _describe(diagnostics: list[_Diagnostic]) -> str:
    return "\n".join(
        f"{Path(d['file']).name}:{_line(d)}: {d.get('rule', '<no rule>')}: {d['message']}"
        for d in diagnostics
    )


@pytest.fixture(scope="module")
def diagnostics(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, list[_Diagnostic]]:
    """Every error and warning pyright strict reports on the right and wrong files, by file."""
    config = _strict_config(tmp_path_factory.mktemp("pyright"))
    files = [*RIGHT_FILES, *WRONG_FILES]
    report = _pyright("-p", str(config), *map(str, files))
    assert report["summary"]["filesAnalyzed"] >= len(files), report["summary"]
    by_file: dict[Path, list[_Diagnostic]] = {path: [] for path in files}
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] in ("error", "warning"):
            by_file.setdefault(Path(diagnostic["file"]), []).append(diagnostic)
    unexpected = {path: found for path, found in by_file.items() if path not in files and found}
    assert not unexpected, f"diagnostics outside the checked files: {unexpected}"
    return by_file


def test_there_are_type_tests() -> None:
    """The right and wrong programs are where the type tests look for them."""
    assert RIGHT_FILES
    assert len(WRONG_FILES) >= 5


@pytest.mark.parametrize("path", RIGHT_FILES, ids=lambda path: path.name)
def test_right_program_passes(path: Path, diagnostics: dict[Path, list[_Diagnostic]]) -> None:
    """Pyright strict reports nothing on a right program: no error, no Unknown type."""
    assert not _expected(path), "right programs carry no # expect: markers"
    assert diagnostics[path] == [], _describe(diagnostics[path])


@pytest.mark.parametrize("path", WRONG_FILES, ids=lambda path: path.name)
def test_wrong_program_fails_on_marked_lines(
    path: Path, diagnostics: dict[Path, list[_Diagnostic]]
) -> None:
    """Pyright strict flags each marked line of a wrong program with its rules, and nothing else."""
    expected = _expected(path)
    assert expected, f"{path.name} marks no line with # expect:"
    found = _found(diagnostics[path])
    missing = sorted((expected - found).elements())
    extra = sorted((found - expected).elements())
    assert (missing, extra) == ([], []), (
        f"{path.name}: marked but not flagged {missing}; flagged but not marked {extra}\n"
        + _describe(diagnostics[path])
    )


def test_verifytypes_complete() -> None:
    """``pyright --verifytypes trio_rooms --ignoreexternal`` scores 100%."""
    report = _pyright("--verifytypes", "trio_rooms", "--ignoreexternal")
    assert "typeCompleteness" in report, report
    completeness = report["typeCompleteness"]
    problems = [d["message"] for d in report["generalDiagnostics"]]
    for symbol in completeness["symbols"]:
        if not symbol["isTypeKnown"] or symbol["diagnostics"]:
            messages = [d["message"] for d in symbol["diagnostics"]] or ["type not known"]
            problems.extend(f"{symbol['name']}: {message}" for message in messages)
    score = completeness["completenessScore"]
    assert score == 1, f"completeness {score:.1%} of {completeness['packageRootDirectory']}:\n" + (
        "\n".join(problems)
    )


async def test_quickstart_runs() -> None:
    """The quick start also runs: it serves, connects and exchanges typed messages."""
    from . import right_quickstart  # collecting must not need the package

    await right_quickstart.main()
