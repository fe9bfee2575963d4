"""Run the demo chat: ``python -m trio_rooms.demo [--host HOST] [--port PORT]``.

Serves the page on ``http://HOST:PORT/`` and the WebSocket rooms on ``PORT + 1``
(with ``--port 0``, both on free ports); stops cleanly on Ctrl-C, closing every
session with 1001 ("going away") so the open pages start reconnecting.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

import trio

from .app import serve_demo


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _run(host: str, port: int) -> None:
    # Ctrl-C (and SIGTERM) cancel the servers instead of raising KeyboardInterrupt
    # at an arbitrary checkpoint, so shutdown is the ordinary graceful one.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            ports: tuple[int, int] = await nursery.start(
                serve_demo, host, port, port + 1 if port else 0
            )
            http_port, ws_port = ports
            print(f"trio_rooms demo: open http://{_url_host(host)}:{http_port}/ in your browser")
            print(f"trio_rooms demo: WebSocket rooms on port {ws_port}; Ctrl-C stops", flush=True)
            async for _ in signals:
                break
            print("trio_rooms demo: stopping", flush=True)
            nursery.cancel_scope.cancel()


def _first(group: BaseExceptionGroup[OSError]) -> OSError:
    """The first error in ``group``, however deeply nested."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


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
        help="HTTP port of the page; the WebSocket server uses PORT+1 (0: any free ports)",
    )
    args = parser.parse_args(argv)
    host: str = args.host
    port: int = args.port
    if not 0 <= port <= 65534:
        parser.error("--port must be between 0 and 65534")
    status = 0
    try:
        trio.run(_run, host, port)
    except* OSError as group:
        # Raised from inside the servers' nurseries, hence the group.
        print(f"trio_rooms demo: cannot listen on {host}: {_first(group)}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
