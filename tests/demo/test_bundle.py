"""The committed ``chat.bundle.js`` is what its TypeScript sources build to."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_rooms.demo.app import STATIC_DIR

from ..ts import node

COMMITTED = STATIC_DIR / "chat.bundle.js"


def test_the_committed_bundle_is_up_to_date(tmp_path: Path) -> None:
    """Bundling clients/typescript/demo/chat.ts again gives the committed file, byte for byte."""
    built = tmp_path / "chat.bundle.js"
    node.bundle(node.require_node(), "demo/chat.ts", built)
    assert built.read_bytes() == COMMITTED.read_bytes(), (
        f"{COMMITTED} is out of date: run `npm run bundle:demo` in {node.CLIENT_DIR}"
    )


@pytest.mark.parametrize("ci", ["", "1"])
def test_missing_node_fails_on_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    """Without node the bundle check is skipped, unless CI is set: then it fails."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="node is missing"):
        node.require_node()
