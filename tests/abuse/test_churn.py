"""Thousands of connects and disconnects leave no task, socket, session or memory behind."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_rooms import Rooms

from ..chat_app import ChatRoom
from ..sockets import CLOSE, client_frame, close_payload, connect_socket, raw_handshake
from .measure import MiB, open_fds, rss, task_count

CYCLES = 5_000
WARM_UP = 400
WORKERS = 8  # concurrent clients, each in a room of its own
RSS_BOUND = 10 * MiB
GOODBYE = client_frame(CLOSE, close_payload(1000))


async def _cycle(port: int, room: str, graceful: bool) -> None:
    """Connect, get admitted (the first frame), leave with a close frame or by closing TCP."""
    stream = await connect_socket(port)
    async with stream:
        client = await raw_handshake(stream, f"/rooms/{room}/websocket")
        assert await client.receive_frame() is not None  # our join: we were admitted
        if graceful:
            await client.send(GOODBYE)
            assert await client.close_code() == 1000
            assert await client.receive_until_eof() == []  # the server closes the TCP


async def _churn(port: int, cycles: int) -> None:
    async def worker(index: int) -> None:
        for cycle in range(index, cycles, WORKERS):
            await _cycle(port, f"churn-{index}", graceful=cycle % 2 == 0)

    async with trio.open_nursery() as nursery:
        for index in range(WORKERS):
            nursery.start_soon(worker, index)


async def _settle(rooms: Rooms[ChatRoom], closed: int) -> None:
    """Wait until ``closed`` sessions have run on_close, then until every task is blocked."""
    for index in range(WORKERS):
        room = await rooms.get(f"churn-{index}")
        await room.wait_closed(closed // WORKERS)
    await trio.testing.wait_all_tasks_blocked()


@pytest.mark.slow
@pytest.mark.embedded_only(
    "hypercorn keeps each closed connection's tasks and socket until its keep_alive_timeout "
    "(5 s), so its counts settle only long after the last cycle"
)
async def test_connect_disconnect_cycles_leave_nothing_behind(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """5,000 cycles, half without a close frame: tasks, fds, sessions and RSS come back."""
    with trio.fail_after(60):
        await _churn(port, WARM_UP)
        await _settle(rooms, WARM_UP)
        tasks, fds, memory = task_count(), open_fds(), rss()
        started = trio.current_time()
        await _churn(port, CYCLES)
        elapsed = trio.current_time() - started
        await _settle(rooms, WARM_UP + CYCLES)
    growth = rss() - memory
    print(f"{CYCLES} cycles in {elapsed:.1f} s, RSS {growth / MiB:+.1f} MiB")
    assert rooms.statistics().sessions == 0
    assert (task_count(), open_fds()) == (tasks, fds)
    assert growth < RSS_BOUND
    closes = rooms.statistics().closes
    assert closes.get(1000, 0) + closes.get(1006, 0) == WARM_UP + CYCLES
