"""An owner's relayed connection after its client's CLOSE: what follows is dropped silently.

The client's node may still hand the link a message it read as its client went (its
writer saw the socket break while its reader was sending): that message comes after
the CLOSE, past a credit the client's node had used up. It is never handled, and never
taken for a breach of the credit, which would break the relay and end the session as
lost (1006) instead of with its client's code.
"""

from __future__ import annotations

import logging

import pytest
import trio

from trio_rooms._core.connection import ConnectionEnded
from trio_rooms.backplane._relay_end import RelayEnd
from trio_rooms.backplane._relay_entries import CLOSE, GONE, MESSAGE, Entry
from trio_rooms.backplane._relay_link import RelayLink
from trio_rooms.backplane._relayed import RelayedConnection

from .redis_server import RedisServer

PATIENCE = 10.0
WINDOW = 8


async def _take_all(connection: RelayedConnection, taken: list[str | bytes]) -> None:
    while True:
        taken.append(await connection.receive())


@pytest.mark.parametrize("untaken", [0, WINDOW // 2, WINDOW])
async def test_messages_after_a_relayed_clients_close_are_dropped_not_a_credit_breach(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, untaken: int
) -> None:
    """``untaken`` messages (up to the whole credit), the client's CLOSE, then messages
    that raced it and its node's GONE: the session takes the first ones, then ends with
    the client's code, not lost, and nothing is logged."""
    link = RelayLink(
        redis_server.url,
        "a",
        prefix="t:",
        timeout=0.5,
        dead_after=60,
        max_stream=100,
        max_queue=64,
    )
    connection = RelayedConnection(link, RelayEnd("b", "r.1", received=1), WINDOW, lambda: True)
    seq = 1
    for n in range(untaken):
        seq += 1
        connection.deliver(Entry(MESSAGE, "b", "r.1", seq, (f"m{n}",)))
    seq += 1
    connection.deliver(Entry(CLOSE, "b", "r.1", seq, (1000, "bye", True, False)))
    for n in range(3):
        seq += 1
        connection.deliver(Entry(MESSAGE, "b", "r.1", seq, (f"late{n}",)))
    seq += 1
    connection.deliver(Entry(CLOSE, "b", "r.1", seq, (1001, "again", True, False)))
    seq += 1  # its answer to a CREDIT or frames of ours that came after its relay ended
    connection.deliver(Entry(GONE, "b", "r.1", seq))
    taken: list[str | bytes] = []
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            with pytest.raises(ConnectionEnded) as ended:
                await _take_all(connection, taken)
            nursery.cancel_scope.cancel()
        # Asked again (a session draining after its end): the end again, at once.
        with pytest.raises(ConnectionEnded) as again:
            await connection.receive()
    assert taken == [f"m{n}" for n in range(untaken)]
    assert (ended.value.code, ended.value.reason) == (1000, "bye")
    assert (again.value.code, again.value.by_peer) == (1000, True)
    assert not connection.ended_by_loss
    bad = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert not bad, [record.getMessage() for record in bad]
