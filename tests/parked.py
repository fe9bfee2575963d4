"""Waiting for sessions to park (``RoomsConfig.park_after``), for the parking tests."""

from __future__ import annotations

from typing import Any

from trio_rooms import Rooms


async def wait_parked(rooms: Rooms[Any], count: int, parks: int = 0) -> int:
    """Wait until ``count`` sessions are parked, after ``parks`` parks in all; those."""
    stats = await rooms.wait_statistics(
        lambda stats: stats.parked_sessions == count and stats.parks >= parks
    )
    return stats.parks
