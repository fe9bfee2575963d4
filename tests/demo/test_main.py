"""``python -m trio_rooms.demo`` as a user runs it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trio_rooms import MemoryStorage, SqliteStorage
from trio_rooms.demo.__main__ import DEFAULT_DB, main, make_storage

from .client import connect
from .test_http import request


async def _read_line(stdout: trio.abc.ReceiveStream, buffer: bytearray) -> str:
    while b"\n" not in buffer:
        chunk = await stdout.receive_some(4096)
        assert chunk, f"the demo exited early: {bytes(buffer)!r}"
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_the_demo_serves_and_stops_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    """It prints its database and URL, serves the page and the rooms on one port under
    hypercorn, and on Ctrl-C or SIGTERM closes the sessions with 1001 (not hypercorn's
    1006) and exits 0."""
    db = tmp_path / "chat.db"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trio_rooms.demo", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        buffer = bytearray()
        with trio.fail_after(20):
            line = await _read_line(process.stdout, buffer)
            assert line == f"trio_rooms demo: history and sessions stored in {db}"
            line = await _read_line(process.stdout, buffer)
            found = re.fullmatch(
                r"trio_rooms demo: open http://127\.0\.0\.1:(\d+)/ in your browser", line
            )
            assert found, line
            port = int(found[1])
            assert await _read_line(process.stdout, buffer) == "trio_rooms demo: Ctrl-C stops"
            assert (await request(port, "/")).status == 200
            async with connect(port, "lobby", "alice") as alice:
                await alice.receive_type("members")
                process.send_signal(stop)
                assert await _read_line(process.stdout, buffer) == "trio_rooms demo: stopping"
                # Sessions are closed with 1001 ("going away") so pages reconnect.
                code = await alice.close_code()
            assert code == 1001
            assert await process.wait() == 0
            while chunk := await process.stdout.receive_some(4096):
                buffer += chunk
        assert bytes(buffer) == b""  # no traceback, no warning: stderr is in there too
        assert db.is_file()
        assert not (tmp_path / DEFAULT_DB).exists()  # the test's current directory
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


def test_a_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--port is a TCP port."""
    with pytest.raises(SystemExit) as exc_info:
        main(["--port", "65536"])
    assert exc_info.value.code == 2
    assert "--port must be between 0 and 65535" in capsys.readouterr().err


def test_db_names_the_sqlite_file_or_memory() -> None:
    """--db is a SQLite file (by default in the current directory); :memory: is MemoryStorage."""
    default = make_storage(DEFAULT_DB)
    assert isinstance(default, SqliteStorage)
    assert default.path == "trio_rooms_demo.db"
    assert isinstance(make_storage(":memory:"), MemoryStorage)


def test_a_db_that_cannot_be_opened_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unusable --db ends the demo with status 1 and says why."""
    db = tmp_path / "no" / "such" / "folder" / "chat.db"
    assert main(["--port", "0", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"trio_rooms demo: cannot open SQLite storage {str(db)!r}")
