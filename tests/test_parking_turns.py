"""Sessions that fall silent together park a few per turn of the run loop, not all at once.

Ending a session's tasks takes tens of microseconds: a room of clients that
connected together would otherwise park in one turn, and every delivery due then would
wait for all of it (s2 of the shared benchmark: 199 parks in one turn).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import final

import pytest
import trio

import trio_rooms
from trio_rooms import Rooms, RoomsConfig
from trio_rooms.transports._parking import ASKS_PER_TURN

from .chat_app import Chat, ChatRoom, Shout
from .parked import wait_parked
from .peer import connect

SESSIONS = 40


@final
class _ParksPerTurn(trio.abc.Instrument):
    """The most sessions parked in one turn (between two waits for I/O)."""

    def __init__(self, rooms: Rooms[ChatRoom]) -> None:
        self._rooms = rooms
        self._at_start = 0
        self.most = 0

    def after_io_wait(self, timeout: float) -> None:
        self._at_start = self._rooms.statistics().parks

    def before_io_wait(self, timeout: float) -> None:
        self.most = max(self.most, self._rooms.statistics().parks - self._at_start)


@pytest.fixture
def config() -> RoomsConfig:
    # Long enough for all of them to connect within one keepalive sweep (a quarter of it).
    return RoomsConfig(park_after=0.4)


async def test_sessions_silent_together_park_a_few_per_turn_and_all_park(
    rooms: Rooms[ChatRoom], nursery: trio.Nursery
) -> None:
    port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    instrument = _ParksPerTurn(rooms)
    trio.lowlevel.add_instrument(instrument)
    try:
        async with AsyncExitStack() as stack:
            peers = [
                await stack.enter_async_context(connect(port, "lobby", f"name=p{i}"))
                for i in range(SESSIONS)
            ]
            await wait_parked(rooms, SESSIONS, SESSIONS)
            # Parked a few at a time, they all still hear a broadcast.
            await peers[0].send(Shout(text="all parked"))  # to all the others
            for peer in peers[1:]:
                message = await peer.receive_until(Chat)
                assert isinstance(message, Chat)
                assert message.text == "all parked"
    finally:
        trio.lowlevel.remove_instrument(instrument)
    assert 0 < instrument.most <= ASKS_PER_TURN
