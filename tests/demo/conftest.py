from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from trio_rooms import SqliteStorage
from trio_rooms.demo.app import serve_demo


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each demo test in its own folder: a default ``--db`` never lands in the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def demo_port(nursery: trio.Nursery, tmp_path: Path) -> int:
    """The demo on 127.0.0.1 and SQLite, as run: its port (page and rooms), a free one."""
    storage = SqliteStorage(tmp_path / "demo.db")
    port: int = await nursery.start(partial(serve_demo, storage=storage), "127.0.0.1", 0)
    return port
