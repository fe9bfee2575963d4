"""Every check of the project: ``nox`` runs lint, typecheck and tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "tests", "changelog"]
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
