"""Run the demo chat: ``python -m trio_rooms.demo [--host H] [--port P] [--db F] [--origin U]``.

Serves the page on ``http://HOST:PORT/`` and the WebSocket rooms on the same port
(``ws://HOST:PORT/rooms/<room>/websocket``), with hypercorn's trio worker; with
``--port 0``, on a free port. Stops cleanly on Ctrl-C or SIGTERM, closing every
session with 1001 ("going away") so the open pages start reconnecting, and exits 0.

The rooms' history and the sessions (for resuming them) are stored in the SQLite
file ``--db`` (``trio_rooms_demo.db`` in the current directory by default), so they
survive a restart; ``--db :memory:`` keeps them in memory only.

Browsers may connect only from the page's own origin (and each ``--origin``): a page
on another site cannot open the rooms with the visitor's cookies.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from functools import partial
from typing import Final, TypeVar, cast

import trio

import trio_rooms
from trio_rooms import MemoryStorage, SqliteStorage, Storage, StorageError

from .app import serve_demo

#: The ``--db`` default, relative to the current directory.
DEFAULT_DB: Final = "trio_rooms_demo.db"
#: The ``--db`` value that keeps everything in memory.
MEMORY_DB: Final = ":memory:"

E = TypeVar("E", bound=BaseException)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def make_storage(db: str) -> Storage:
    """The storage ``--db`` names: `SqliteStorage` on the file, or `MemoryStorage`."""
    return MemoryStorage() if db == MEMORY_DB else SqliteStorage(db)


def _describe(db: str) -> str:
    if db == MEMORY_DB:
        return "in memory only (--db :memory:): lost when the demo stops"
    return f"in {os.path.abspath(db)}"


async def _run(host: str, port: int, db: str, origins: Sequence[str]) -> None:
    print(f"trio_rooms demo: history and sessions stored {_describe(db)}", flush=True)
    async with trio.open_nursery() as nursery:
        serve = partial(serve_demo, storage=make_storage(db), origins=origins)
        bound: int = await nursery.start(serve, host, port)
        print(f"trio_rooms demo: open http://{_url_host(host)}:{bound}/ in your browser")
        print("trio_rooms demo: Ctrl-C stops", flush=True)
        try:
            await trio.sleep_forever()
        finally:  # cancelled by trio_rooms.run on Ctrl-C or SIGTERM: the rooms send 1001
            print("trio_rooms demo: stopping", flush=True)


def _first(group: BaseExceptionGroup[E]) -> E:
    """The first error in ``group``, however deeply nested."""
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = cast("BaseExceptionGroup[E]", first).exceptions[0]
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and serve until Ctrl-C; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m trio_rooms.demo", description="A trio_rooms chat room in your browser."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port of the page and the rooms (default: 8000; 0: any free port)",
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"SQLite file of the rooms' history and sessions (default: {DEFAULT_DB}; "
        f"{MEMORY_DB}: in memory only)",
    )
    parser.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="URL",
        help="another origin browsers may connect from, e.g. https://chat.example.com "
        "(repeatable; the page's own origin is always allowed)",
    )
    args = parser.parse_args(argv)
    host: str = args.host
    port: int = args.port
    db: str = args.db
    origins: list[str] = args.origin
    if not 0 <= port <= 65535:
        parser.error("--port must be between 0 and 65535")
    status = 0
    try:
        trio_rooms.run(_run, host, port, db, origins)
    except* StorageError as group:
        print(f"trio_rooms demo: {_first(group)}", file=sys.stderr)
        status = 1
    except* OSError as group:
        # Raised from inside the servers' nurseries, hence the group.
        print(f"trio_rooms demo: cannot listen on {host}: {_first(group)}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
