"""Servers in subprocesses: started, waited for, and killed on exit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import trio


@asynccontextmanager
async def open_server_process(module: str, *args: str) -> AsyncGenerator[tuple[trio.Process, int]]:
    """``python -m module *args``, which prints ``PORT <n>`` once listening.

    Yields the process and its port; kills it on exit if it is still running.
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", module, *args],
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                assert chunk, f"{module} exited before listening"
                line += chunk
        assert line.startswith(b"PORT ")
        yield process, int(line.split()[1])
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
