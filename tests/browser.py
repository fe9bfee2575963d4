"""Debian's chromium for the Playwright tests: where it is, how it is launched, and what
happens without it (fail on CI, skip elsewhere). ``playwright install`` is never used."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_browser(chromium: Path = CHROMIUM) -> None:
    """Fail on CI, skip elsewhere, when playwright or ``chromium`` is missing."""
    if importlib.util.find_spec("playwright") is None:
        reason = "the playwright package is missing (it is in the test dependency group)"
    elif not chromium.is_file():
        reason = f"{chromium} is missing (apt-get install chromium; .ci/run does it)"
    else:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {reason}")
    pytest.skip(reason)
