"""Arguments ``trio_rooms.run`` must reject: they do not fit the function it runs."""

from __future__ import annotations

import trio_rooms


async def serve(port: int, host: str = "127.0.0.1") -> None: ...


def serve_sync(port: int) -> None: ...


trio_rooms.run(serve, 8000)
trio_rooms.run(serve, "8000")  # expect: reportArgumentType
trio_rooms.run(serve)  # expect: reportArgumentType
trio_rooms.run(serve_sync, 8000)  # expect: reportArgumentType
