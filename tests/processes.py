"""Servers in subprocesses: started, waited for, and killed on exit."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

import trio_rooms


@asynccontextmanager
async def open_server_process(
    module: str, *args: str, capture_stderr: bool = False
) -> AsyncGenerator[tuple[trio.Process, int]]:
    """``python -m module *args``, which prints ``PORT <n>`` once listening.

    Yields the process and its port; kills it on exit if it is still running. With
    ``capture_stderr``, ``process.stderr`` is a pipe (read it once the process ended).
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", module, *args],
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture_stderr else None,
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
        if process.stderr is not None:
            await process.stderr.aclose()


async def serve_until_signalled(rooms: trio_rooms.Rooms[Any], port: int) -> None:
    """In the subprocess: serve ``rooms`` on 127.0.0.1:``port`` (0: a free one), print
    ``PORT <n>`` once listening, and shut down gracefully on SIGINT or SIGTERM."""
    async with trio.open_nursery() as nursery:
        bound: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", port)
        print(f"PORT {bound}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
