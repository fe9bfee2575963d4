"""The relay link's XADD replies, read in bulk every so often: an error among them still
breaks every relay of the node, and the link connects again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import trio.testing

from trio_rooms._resp import open_resp
from trio_rooms.backplane._relay_entries import Entry
from trio_rooms.backplane._relay_link import RelayLink
from trio_rooms.backplane._relay_replies import OWED, CommitReply, Unconfirmed, confirm

from .redis_server import RedisServer

PATIENCE = 10.0


class _Endpoint:
    """Records why its relay broke."""

    def __init__(self) -> None:
        self.why: str | None = None
        self.broke = trio.Event()

    def deliver(self, entry: Entry) -> None:
        raise AssertionError(f"nothing is sent to it: {entry!r}")

    def frames(self, frames: object) -> None:
        raise AssertionError("no frames are sent to it")

    def broken(self, why: str) -> None:
        self.why = why
        self.broke.set()


async def test_an_xadd_refused_breaks_the_nodes_relays_and_the_link_connects_again(
    redis_server: RedisServer,
) -> None:
    """An XADD that Redis answers with an error (the peer's stream key is not a stream)
    is found among the replies checked in bulk: the link drops its connections, which
    breaks every relay of the node, and connects again."""
    link = RelayLink(
        redis_server.url, "a", prefix="t:", timeout=0.2, dead_after=60, max_stream=100, max_queue=8
    )
    async with open_resp(redis_server.url, timeout=1.0) as redis:
        assert await redis.call(b"SET", b"t:relay:b", b"not a stream") == b"OK"
    end = link.new_end("b")
    endpoint = _Endpoint()
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            link.add(end, endpoint)
            assert link.try_message(end, "refused")
            await endpoint.broke.wait()
            assert endpoint.why == "the relays' connection to Redis was lost"
            assert not link.connected
            await link.wait_connected()
            nursery.cancel_scope.cancel()


async def test_replies_owed_wake_the_check_once_there_are_many() -> None:
    """`Unconfirmed.wait` waits for an XADD written and unanswered; `wait_many` for
    `OWED` of them, so that their replies do not pile up in the socket until the period."""
    unconfirmed = Unconfirmed()
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            written = _waiting(nursery, unconfirmed.wait)
            many = _waiting(nursery, unconfirmed.wait_many)
            await trio.testing.wait_all_tasks_blocked()
            assert not written.is_set()
            unconfirmed.add(1)
            await written.wait()
            unconfirmed.add(OWED - 2)
            await trio.testing.wait_all_tasks_blocked()
            assert not many.is_set()
            unconfirmed.add(1)
            await many.wait()
            unconfirmed.answered = unconfirmed.written
            again = _waiting(nursery, unconfirmed.wait)
            await trio.testing.wait_all_tasks_blocked()
            assert not again.is_set()  # all answered: nothing is due
            unconfirmed.add(1)
            await again.wait()


async def test_a_commit_written_wakes_the_check_at_once() -> None:
    """A commit's reply is read as it comes, not at the period: `wait_many` returns once
    one is written, whatever few XADDs are owed, and `confirm` hands it its reply."""
    unconfirmed = Unconfirmed()
    reply = CommitReply()
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            many = _waiting(nursery, unconfirmed.wait_many)
            unconfirmed.add(1)
            await trio.testing.wait_all_tasks_blocked()
            assert not many.is_set()
            unconfirmed.add_commit(reply)
            await many.wait()
            assert list(unconfirmed.commits) == [(1, reply)]


async def test_the_check_hands_a_commit_its_reply_among_the_xadds_ones(
    redis_server: RedisServer,
) -> None:
    """On a real connection: an XADD, a commit (here an ECHO), an XADD, written at once:
    the commit's waiter gets its own reply, as soon as it comes (not after the period)."""
    unconfirmed = Unconfirmed()
    reply = CommitReply()
    xadd = b"*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\ne\r\n$1\r\nx\r\n"
    with trio.fail_after(PATIENCE):
        async with (
            open_resp(redis_server.url, timeout=1.0) as connection,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(confirm, connection, unconfirmed, 60.0)  # a period of 90 s
            await connection.send(xadd + b"*2\r\n$4\r\nECHO\r\n$4\r\nmine\r\n" + xadd)
            unconfirmed.add(1)
            unconfirmed.add_commit(reply)
            unconfirmed.add(1)
            await reply.wait()
            assert (reply.reply, reply.lost) == (b"mine", None)
            nursery.cancel_scope.cancel()


def _waiting(nursery: trio.Nursery, wait: Callable[[], Awaitable[None]]) -> trio.Event:
    """An event set once ``wait`` returns, in a task of ``nursery``."""
    returned = trio.Event()

    async def run() -> None:
        await wait()
        returned.set()

    nursery.start_soon(run)
    return returned
