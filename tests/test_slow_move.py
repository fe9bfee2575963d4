"""A relayed client too slow to take its frames moves when its owner is lost, at once.

As in `tests.test_redteam5_slow_move`: node ``a`` (the owner, killed with SIGKILL) has
answered a burst of a relayed client of node ``b`` that reads nothing, so ``b`` is in the
middle of a write to it. ``b`` no longer waits ``close_timeout`` for that write (here a
minute, past the test's patience): it stops writing at once, keeps the unwritten rest of
the cut frame for the next write, and moves the session to the next owner, which replays
what the client was not written. The client, reading again, gets every frame whole, and
every answer exactly once, in order, on the connection it never left.
"""

from __future__ import annotations

from typing import cast

import pytest
import trio

from .redis_server import RedisServer
from .test_redteam5_slow_move import BLOB, ECHOES, PATIENCE, open_slow_move, read_until_moved

pytestmark = pytest.mark.slow


async def test_a_slow_relayed_client_moves_without_waiting_for_its_write(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(PATIENCE):
        async with (
            # A close_timeout past the patience: waited for, it would fail the test.
            open_slow_move(redis_server, close_timeout=2 * PATIENCE) as slow,
            slow.open_client() as (client, session, _),
        ):
            await slow.burst_then_kill(client)
            # b took the room and resumed the session there: its move waited for nothing.
            await slow.rooms_b.wait_statistics(
                lambda stats: stats.relayed_sessions == 0 and stats.sessions == 1
            )
            messages, code = await read_until_moved(client)
    assert code is None  # not closed: moved, the next owner's welcome came
    moved = [cast("dict[str, object]", m["$session"]) for m in messages if "$session" in m]
    assert [m["id"] for m in moved] == [session["id"]]
    assert moved[0]["resumed"] is True
    assert messages[-1] == {"type": "welcome", "node": "b", "session": moved[0]["id"]}
    echoes = [m["n"] for m in messages if m.get("type") == "echoed"]
    assert echoes == list(range(ECHOES)), echoes
    blobs = [m for m in messages if m.get("type") == "blob"]
    assert blobs == [{"type": "blob", "data": "x" * BLOB}] * ECHOES
