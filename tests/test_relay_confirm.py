"""The relay link's XADD replies, read in bulk every so often: an error among them still
breaks every relay of the node, and the link connects again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import trio.testing

from trio_rooms._resp import open_resp
from trio_rooms.backplane._relay_entries import Entry
from trio_rooms.backplane._relay_link import RelayLink
from trio_rooms.backplane._relay_replies import OWED, Unconfirmed

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


def _waiting(nursery: trio.Nursery, wait: Callable[[], Awaitable[None]]) -> trio.Event:
    """An event set once ``wait`` returns, in a task of ``nursery``."""
    returned = trio.Event()

    async def run() -> None:
        await wait()
        returned.set()

    nursery.start_soon(run)
    return returned
