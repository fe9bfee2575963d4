"""The demo page in a real browser: Playwright driving Debian's chromium.

The demo runs as a user runs it (``python -m trio_rooms.demo`` in a subprocess), so
the test itself is a plain sync test and uses Playwright's sync API. ``.ci/run``
installs chromium; without it (or without playwright) the test fails on CI (``CI``
set) and is skipped elsewhere. ``playwright install`` is never used: the browser is
the system's.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from ..browser import CHROMIUM, CHROMIUM_ARGS, require_browser

#: Milliseconds a page condition may take (a reconnect waits up to the page's 10 s backoff).
TIMEOUT = 30_000


def _require_browser() -> None:
    """Fail on CI, skip elsewhere, when playwright or chromium is missing."""
    require_browser(CHROMIUM)  # the module's CHROMIUM: a test replaces it


def _read_line(stream: IO[bytes], deadline: float) -> str:
    """One line of the demo's output, waiting until ``deadline`` (time.monotonic)."""
    line = b""
    fd = stream.fileno()
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the demo printed no full line in time: {line!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            byte = os.read(fd, 1)
            assert byte, f"the demo exited early: {line!r}"
            line += byte
    return line.decode().rstrip("\n")


@contextmanager
def _demo(db: Path, port: int = 0) -> Generator[int]:
    """``python -m trio_rooms.demo`` on ``port`` and ``db`` while the block runs; its port.

    Leaving the block stops it with Ctrl-C (SIGINT) and checks that it exits with 0.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_rooms.demo", "--port", str(port), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 20
        _read_line(process.stdout, deadline)  # where the history is stored
        line = _read_line(process.stdout, deadline)
        found = re.fullmatch(
            r"trio_rooms demo: open http://127\.0\.0\.1:(\d+)/ in your browser", line
        )
        assert found, line
        yield int(found[1])
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_two_pages_chat_and_reconnect_after_a_restart(tmp_path: Path) -> None:
    """Two pages in one room chat and see each other; another room sees nothing; a
    rename shows on the other page; after a restart both pages reconnect on their own."""
    _require_browser()
    from playwright.sync_api import Page, expect, sync_playwright

    def say(page: Page, text: str) -> None:
        page.fill("#message-input", text)
        page.click("#send-button")

    def bubble(page: Page, text: str) -> None:
        expect(page.locator("#messages .msg .bubble", has_text=text)).to_have_count(
            1, timeout=TIMEOUT
        )

    def member(page: Page, name: str) -> None:
        expect(page.locator("#member-list .member-name").filter(has_text=name)).to_have_count(
            1, timeout=TIMEOUT
        )

    def status(page: Page, state: str) -> None:
        expect(page.locator("#status")).to_have_attribute("data-state", state, timeout=TIMEOUT)

    db = tmp_path / "chat.db"
    screenshot = tmp_path / "chat.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # One context per page: each is its own person (localStorage keeps the name).
            alice, bob, carol = (
                browser.new_context(viewport={"width": 1100, "height": 700}).new_page()
                for _ in range(3)
            )
            with _demo(db) as port:
                url = f"http://127.0.0.1:{port}/"
                alice.goto(f"{url}?name=alice#lobby")
                bob.goto(f"{url}?name=bob#lobby")
                carol.goto(f"{url}?name=carol#kitchen")
                for page in (alice, bob, carol):
                    status(page, "connected")
                member(alice, "bob")
                member(bob, "alice")

                say(alice, "hello from alice")
                say(bob, "hi alice, bob here")
                for page in (alice, bob):
                    bubble(page, "hello from alice")
                    bubble(page, "hi alice, bob here")

                alice.fill("#name-input", "alicia")
                alice.click("#name-form button[type=submit]")
                member(bob, "alicia")
                renamed = bob.locator("#messages .system", has_text="alice is now alicia")
                expect(renamed).to_have_count(1, timeout=TIMEOUT)

                # The other room: once carol sees her own message, she has been sent
                # everything the lobby would have sent her, which is nothing.
                say(carol, "anyone in the kitchen?")
                bubble(carol, "anyone in the kitchen?")
                expect(carol.locator("#messages .msg")).to_have_count(1)
                expect(carol.locator("#member-list .member-name")).to_have_text(["carol"])
                expect(alice.locator("#messages .msg", has_text="kitchen")).to_have_count(0)
            # Stopped (exit status 0 checked): the pages notice and keep trying.
            for page in (alice, bob):
                status(page, "reconnecting")
            with _demo(db, port):  # the same port and database
                for page in (alice, bob):
                    status(page, "connected")
                member(bob, "alicia")
                member(alice, "bob")
                say(bob, "welcome back")
                bubble(alice, "welcome back")
                say(alice, "glad to be back")
                bubble(bob, "glad to be back")
                alice.screenshot(path=str(screenshot))
        finally:
            browser.close()
    assert screenshot.stat().st_size > 0


@pytest.mark.parametrize("ci", ["", "1"])
def test_a_missing_browser_fails_on_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str
) -> None:
    """Without chromium the browser test is skipped, unless CI is set: then it fails."""
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="no-chromium"):
        _require_browser()
