"""The TypeScript client in Chromium, on the browser's own WebSocket, against a real server.

``clients/typescript/test/browser/page.ts`` is bundled with the client into a page that
Playwright opens (Debian's chromium, as the demo's browser test does); the page runs its
scenario against ``tests/ts/server.py`` and returns what it saw.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import pytest

from ..browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from . import node

REPO = Path(__file__).parent.parent.parent
#: Milliseconds the scenario may take.
TIMEOUT = 30_000


@contextmanager
def _server(db: Path) -> Generator[int]:
    """``python -m tests.ts.server`` on ``db`` while the block runs; its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.ts.server", str(db)], cwd=REPO, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        found = re.fullmatch(r"PORT (\d+)\n", line)
        assert found, f"the server printed {line!r}"
        yield int(found[1])
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.slow
@pytest.mark.parametrize("wire", ["json", "msgpack"])
def test_the_client_round_trips_resumes_and_skips_invalid_messages_in_chromium(
    tmp_path: Path, wire: str
) -> None:
    """In Chromium the client sends and receives, bytes included, reconnects after a close
    with 1012 into the same session with its data, and skips what its schema refuses."""
    require_browser()
    built = node.require_node()
    from playwright.sync_api import sync_playwright

    node.bundle(built, "test/browser/page.ts", tmp_path / "page.js")
    page_file = tmp_path / "index.html"
    page_file.write_text('<!doctype html><meta charset="utf-8"><script src="page.js"></script>')
    with _server(tmp_path / "rooms.db") as port, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(page_file.as_uri())
            url = f"ws://127.0.0.1:{port}/rooms/lobby/websocket"
            report = cast(
                "dict[str, object]",
                page.evaluate("([url, wire]) => globalThis.scenario(url, wire)", [url, wire]),
            )
        finally:
            browser.close()
    session_id = report["sessionId"]
    assert isinstance(session_id, str)
    assert report["echoed"] == {"type": "echoed", "text": "from chromium ✓", "numbers": [1, 2**40]}
    assert report["reconnect"] == {"code": 1012, "resumed": True, "sessionId": session_id}
    assert report["afterResume"] == {"type": "you", "sessionId": session_id, "name": "bea"}
    assert report["afterOdd"] == {"type": "echoed", "text": "after odd", "numbers": []}
    invalid = cast("list[str]", report["invalid"])
    assert len(invalid) == 2, invalid
    assert report["state"] == "closed"
    # Bytes: a bin read as a Uint8Array in msgpack, a base64 string in JSON.
    if wire == "msgpack":
        assert report["reversed"] == {"binary": True, "data": "255,2,1", "parts": ["8,7"]}
    else:
        assert report["reversed"] == {"binary": False, "data": "/wIB", "parts": ["CAc="]}
