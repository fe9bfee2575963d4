"""Fixtures of the schema tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .node_contract import node_project


@pytest.fixture(scope="session")
def node_dir() -> Path:
    """The npm project that runs the generated module, installed (or the test skips)."""
    return node_project()
