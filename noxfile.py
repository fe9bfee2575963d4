"""Every check of the project: ``nox`` runs lint, typecheck, ts and tests."""

from __future__ import annotations

import os
import shutil
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
