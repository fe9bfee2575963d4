"""A relayed session's `receive` parks its task; what the link hands it is never lost.

The link's reader hands the owner's `RelayedConnection` each entry in a scheduler turn
of its own, waking the session's task parked in `receive`: bursts, cancellations of
that wait, and a second receiver must neither lose, reorder nor duplicate a message.
No Redis: the link is not running (its CREDITs are dropped, as while disconnected).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_rooms._core.connection import ConnectionEnded
from trio_rooms.backplane._relay_end import RelayEnd
from trio_rooms.backplane._relay_entries import CLOSE, MESSAGE, Entry
from trio_rooms.backplane._relay_link import RelayLink
from trio_rooms.backplane._relayed import RelayedConnection

PATIENCE = 10.0
WINDOW = 64


def _connection() -> RelayedConnection:
    link = RelayLink(
        "redis://127.0.0.1:1/0",
        "a",
        prefix="t:",
        timeout=0.5,
        dead_after=60,
        max_stream=100,
        max_queue=64,
    )
    return RelayedConnection(link, RelayEnd("b", "r.1", received=1), WINDOW, lambda: True)


class _Feed:
    """Delivers the client's messages as the link's reader would: in order, numbered."""

    def __init__(self, connection: RelayedConnection) -> None:
        self._connection = connection
        self.sent: list[str | bytes] = []

    def burst(self, count: int) -> None:
        for _ in range(count):
            message = f"m{len(self.sent)}"
            self.sent.append(message)
            self._connection.deliver(Entry(MESSAGE, "b", "r.1", len(self.sent) + 1, (message,)))


async def test_a_burst_to_a_parked_receive_comes_out_in_order_and_whole() -> None:
    """Bursts of every size up to the window, each while the receiver is parked (or
    still busy with the last burst): every message once, in order."""
    connection = _connection()
    feed = _Feed(connection)
    taken: list[str | bytes] = []
    total = sum(range(1, WINDOW + 1))

    async def receiver() -> None:
        while len(taken) < total:
            taken.append(await connection.receive())
            if len(taken) % 7 == 0:
                await trio.lowlevel.checkpoint()  # a handler that yields now and then

    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            for size in range(1, WINDOW + 1):
                await trio.testing.wait_all_tasks_blocked()  # parked in `receive`
                feed.burst(size)
    assert taken == feed.sent
    assert connection.taken == total


async def test_a_burst_delivered_before_its_receiver_wakes_is_taken_whole() -> None:
    """A burst delivered in one turn after the parked receiver was woken by its first
    message: the task is rescheduled once and takes them all in order."""
    connection = _connection()
    feed = _Feed(connection)
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            taken: list[str | bytes] = []

            async def receiver() -> None:
                while len(taken) < WINDOW:
                    taken.append(await connection.receive())

            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            feed.burst(WINDOW)  # exactly the credit: none is past it
    assert taken == feed.sent


async def test_cancelling_a_parked_receive_loses_nothing() -> None:
    """Cancelled while parked, then messages arrive: the next `receive` gets them all."""
    connection = _connection()
    feed = _Feed(connection)
    with trio.fail_after(PATIENCE):
        with trio.move_on_after(0.05) as waited:  # sync-ok: the cancellation under test
            await connection.receive()
        assert waited.cancelled_caught
        feed.burst(3)
        assert [await connection.receive() for _ in range(3)] == feed.sent


@pytest.mark.parametrize("cancel_first", [False, True])
async def test_a_message_delivered_as_its_receive_is_cancelled_is_taken_once(
    cancel_first: bool,
) -> None:
    """Delivered and cancelled in the same turn, in either order: the woken `receive`
    returns it (a rescheduled task is past aborting) or, cancelled, leaves it for the
    next one; either way each message comes out once, in order."""
    connection = _connection()
    feed = _Feed(connection)
    taken: list[str | bytes] = []
    scope = trio.CancelScope()

    async def receiver() -> None:
        with scope:
            taken.append(await connection.receive())

    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            if cancel_first:
                scope.cancel()
                feed.burst(2)
            else:
                feed.burst(2)
                scope.cancel()
        while len(taken) < 2:
            taken.append(await connection.receive())
    assert taken == feed.sent


async def test_the_clients_close_wakes_a_parked_receive() -> None:
    """A CLOSE for a parked receiver: it raises the client's end, after its messages."""
    connection = _connection()
    feed = _Feed(connection)
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            taken: list[str | bytes] = []
            ended: list[ConnectionEnded] = []

            async def receiver() -> None:
                try:
                    while True:
                        taken.append(await connection.receive())
                except ConnectionEnded as exc:
                    ended.append(exc)

            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            feed.burst(2)
            connection.deliver(Entry(CLOSE, "b", "r.1", 4, (4000, "bye", True, True)))
    assert taken == feed.sent
    assert [(exc.code, exc.reason) for exc in ended] == [(4000, "bye")]


async def test_a_second_receiver_is_refused_and_the_first_keeps_waiting() -> None:
    """One task receives at a time (as a socket's): a second gets BusyResourceError and
    the parked one still gets the next message."""
    connection = _connection()
    feed = _Feed(connection)
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            taken: list[str | bytes] = []

            async def receiver() -> None:
                taken.append(await connection.receive())

            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await connection.receive()
            feed.burst(1)
    assert taken == feed.sent
