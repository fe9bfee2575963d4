"""Every check of the project: ``nox`` runs lint, typecheck and tests."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "tests", "changelog"]
nox.options.reuse_existing_virtualenvs = True


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
    """pytest, warnings as errors."""
    session.install("-e", ".", "--group", "test")
    session.run("pytest", *session.posargs)


@nox.session
def changelog(session: nox.Session) -> None:
    """towncrier: the next release's changelog from ``changelog.d/``, as a draft."""
    session.install("towncrier")
    session.run("towncrier", "build", "--draft", "--version", "next")
