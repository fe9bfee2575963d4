"""The Redis backplane's parts driven without a socket: queue, subscriptions, membership, health.

Each part keeps its logic apart from its connection loop (`run`), so these tests call
the same methods the loop does and look at the commands it would send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import trio
import trio.testing
from coredis.commands import CommandRequest
from coredis.typing import ResponseType

from trio_rooms import BackplaneError
from trio_rooms.backplane._connection import BATCH
from trio_rooms.backplane._membership import Membership
from trio_rooms.backplane._publisher import Publisher
from trio_rooms.backplane._scripts import CHUNK, REFRESH_SHA, Names
from trio_rooms.backplane._subscriber import Subscriber
from trio_rooms.backplane._supervisor import FIRST_BACKOFF, Backoff, Health
from trio_rooms.backplane.redis import RedisBackplane

NODE = b"n" * 16
OTHER = b"o" * 16


def _ignore() -> None:
    """A part's ``changed`` callback where the test does not count wake-ups."""


class _Wakes:
    """A part's ``changed`` callback that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1

    def take(self) -> int:
        """The calls since the last `take`."""
        count, self.count = self.count, 0
        return count


def _sent(writes: list[CommandRequest[ResponseType]]) -> list[tuple[object, ...]]:
    return [(write.name, *write.arguments) for write in writes]


# ------------------------------------------------------------------------ publisher


def _publisher(
    *, max_queue: int = 100, max_queue_bytes: int = 100, changed: Callable[[], None] = _ignore
) -> Publisher:
    return Publisher(
        NODE, max_queue=max_queue, max_queue_bytes=max_queue_bytes, timeout=1, changed=changed
    )


def test_the_queue_is_bounded_in_bytes() -> None:
    """Payloads that would take the queue past max_queue_bytes drop; a batch taken frees room."""
    publisher = _publisher(max_queue_bytes=10)
    for payload in (b"1234", b"5678", b"abc", b"12345678901"):
        publisher.publish(b"channel", payload)
    assert (publisher.queued_bytes, publisher.dropped) == (8, 2)
    assert publisher.take_batch() == [(b"channel", NODE + b"1234"), (b"channel", NODE + b"5678")]
    assert publisher.queued_bytes == 0
    publisher.publish(b"channel", b"0123456789")
    assert (publisher.queued_bytes, publisher.dropped) == (10, 2)


def test_the_queue_is_bounded_in_payloads() -> None:
    """Beyond max_queue waiting payloads, however small, publish drops and counts."""
    publisher = _publisher(max_queue=3)
    for _ in range(5):
        publisher.publish(b"channel", b"")
    assert publisher.dropped == 2


def test_a_batch_keeps_the_order_and_at_most_batch_payloads() -> None:
    """take_batch hands out the oldest BATCH payloads in order; done counts them published."""
    publisher = _publisher(max_queue=2 * BATCH, max_queue_bytes=10 * BATCH)
    for i in range(BATCH + 1):
        publisher.publish(b"channel", b"%d" % i)
    first = publisher.take_batch()
    assert [data[len(NODE) :] for _, data in first] == [b"%d" % i for i in range(BATCH)]
    publisher.done()
    assert publisher.published == BATCH
    assert publisher.take_batch() == [(b"channel", NODE + b"%d" % BATCH)]


def test_losing_the_connection_drops_what_waits_and_what_was_in_flight() -> None:
    """lost() counts the batch in flight and the queue as dropped, and publish drops until run."""
    publisher = _publisher()
    for payload in (b"a", b"b", b"c"):
        publisher.publish(b"channel", payload)
    publisher.take_batch()
    publisher.publish(b"channel", b"d")
    publisher.lost()
    assert (publisher.dropped, publisher.published, publisher.queued_bytes) == (4, 0, 0)
    publisher.publish(b"channel", b"e")
    assert publisher.dropped == 5


def test_the_publisher_wakes_the_statistics_where_its_counters_change() -> None:
    """A drop, a confirmed batch and a loss each call changed; a queued payload does not."""
    wakes = _Wakes()
    publisher = _publisher(max_queue=1, changed=wakes)
    publisher.publish(b"channel", b"a")
    assert wakes.take() == 0
    publisher.publish(b"channel", b"full")
    assert (publisher.dropped, wakes.take()) == (1, 1)
    publisher.take_batch()
    publisher.done()
    assert (publisher.published, wakes.take()) == (1, 1)
    publisher.lost()
    assert wakes.take() == 1


def test_max_queue_bytes_is_checked_and_enforced_by_the_backplane() -> None:
    """RedisBackplane rejects max_queue_bytes below 1 and drops publishes beyond it."""
    with pytest.raises(ValueError, match="max_queue_bytes"):
        RedisBackplane("redis://127.0.0.1:1/0", max_queue_bytes=0)
    backplane = RedisBackplane("redis://127.0.0.1:1/0", max_queue_bytes=1000)
    backplane.publish("lobby", b"x" * 600)
    backplane.publish("lobby", b"x" * 600)
    backplane.publish("lobby", b"x" * 400)
    assert backplane.statistics().dropped == 1


# ------------------------------------------------------------------------ subscriber


def test_only_other_nodes_broadcasts_on_wanted_rooms_are_delivered() -> None:
    """accept() skips confirmations, this node's own broadcasts, foreign data and dropped rooms."""
    subscriber = Subscriber(NODE, timeout=1, health_check_interval=1, changed=_ignore)
    subscriber.subscribe(b"ch:lobby", "lobby")
    assert subscriber.accept([b"message", b"ch:lobby", OTHER + b"hi"]) == ("lobby", b"hi")
    assert subscriber.accept([b"subscribe", b"ch:lobby", 1]) is None
    assert subscriber.accept([b"message", b"ch:lobby", NODE + b"mine"]) is None
    assert subscriber.accept([b"message", b"ch:lobby", b"short"]) is None
    assert subscriber.accept([b"message", b"ch:hall", OTHER + b"hi"]) is None
    subscriber.unsubscribe(b"ch:lobby")
    assert subscriber.accept([b"message", b"ch:lobby", OTHER + b"late"]) is None


def test_subscription_changes_are_chunked_and_only_what_differs() -> None:
    """changes() unsubscribes what is no longer wanted, subscribes what is new, CHUNK at once."""
    subscriber = Subscriber(NODE, timeout=1, health_check_interval=1, changed=_ignore)
    channels = [b"ch:%05d" % i for i in range(CHUNK + 1)]
    for channel in channels:
        subscriber.subscribe(channel, channel.decode())
    wanted, commands = subscriber.changes({b"ch:gone", channels[0]})
    assert wanted == set(channels)
    assert [(name, list(chunk)) for name, chunk in commands] == [
        (b"UNSUBSCRIBE", [b"ch:gone"]),
        (b"SUBSCRIBE", channels[1 : CHUNK + 1]),
    ]
    assert subscriber.changes(wanted) == (wanted, [])


# ------------------------------------------------------------------------ membership


def _membership(*, max_queue: int = 100, changed: Callable[[], None] = _ignore) -> Membership:
    return Membership(
        Names("p:"),
        "node",
        where="redis://here",
        ttl=1.5,
        timeout=1,
        max_queue=max_queue,
        changed=changed,
    )


def test_changes_become_one_refresh_per_room_and_one_zrem() -> None:
    """Joins are written with the refresh script and a fresh expiry, leaves with ZREM."""
    membership = _membership()
    membership.join("lobby", "ann")
    membership.join("lobby", "bob")
    membership.join("hall", "hal")
    membership.leave("hall", "hal")
    assert _sent(membership.take_writes()) == [
        (b"EVALSHA", REFRESH_SHA, 1, "p:members:lobby", 1500, "node:ann", "node:bob"),
        (b"ZREM", "p:members:hall", "node:hal"),
    ]
    assert _sent(membership.take_writes()) == []
    ((*script, first, second),) = _sent(membership.refresh_writes())  # local sessions: a set
    assert script == [b"EVALSHA", REFRESH_SHA, 1, "p:members:lobby", 1500]
    assert {first, second} == {"node:ann", "node:bob"}


def test_unconfirmed_writes_are_written_again_after_a_loss_unless_newer() -> None:
    """lost() requeues the writes in flight, but a newer change to the same member wins."""
    membership = _membership()
    membership.join("lobby", "ann")
    membership.join("lobby", "bob")
    membership.take_writes()
    membership.leave("lobby", "bob")
    membership.lost()
    assert _sent(membership.take_writes()) == [
        (b"EVALSHA", REFRESH_SHA, 1, "p:members:lobby", 1500, "node:ann"),
        (b"ZREM", "p:members:lobby", "node:bob"),
    ]
    membership.confirmed()
    membership.lost()
    assert _sent(membership.take_writes()) == []


def test_changes_beyond_max_queue_are_dropped_and_counted() -> None:
    """A change to a member not already pending is dropped once max_queue changes wait."""
    membership = _membership(max_queue=2)
    membership.join("lobby", "ann")
    membership.join("lobby", "bob")
    membership.join("lobby", "cid")
    membership.leave("lobby", "ann")  # already pending: replaces, not dropped
    assert membership.dropped == 1


def test_dropped_changes_wake_the_statistics() -> None:
    """A change dropped by a full queue, or when requeued after a loss, calls changed."""
    wakes = _Wakes()
    membership = _membership(max_queue=1, changed=wakes)
    membership.join("lobby", "ann")
    assert wakes.take() == 0
    membership.join("lobby", "bob")
    assert (membership.dropped, wakes.take()) == (1, 1)
    membership.take_writes()
    membership.join("lobby", "cid")  # the queue is full again when ann's write is requeued
    membership.lost()
    assert (membership.dropped, wakes.take()) == (2, 1)


async def _written_soon(membership: Membership) -> bool:
    """Whether `Membership.wait_written` returns without anything else happening."""
    with trio.move_on_after(1) as waited:
        await membership.wait_written()
    return not waited.cancelled_caught


async def test_wait_written_returns_once_redis_confirmed_the_changes_made_before_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    """wait_written waits for the writes of earlier changes, through a loss, not for later ones."""
    membership = _membership()
    assert await _written_soon(membership)  # nothing changed yet
    membership.join("lobby", "ann")
    assert not await _written_soon(membership)  # not written yet
    async with trio.open_nursery() as nursery:
        returned = trio.Event()

        async def wait() -> None:
            await membership.wait_written()
            returned.set()

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        membership.take_writes()
        membership.lost()  # ann's write is requeued, so not confirmed yet
        membership.take_writes()
        membership.join("lobby", "bob")  # after the wait began: not waited for
        await trio.testing.wait_all_tasks_blocked()
        assert not returned.is_set()
        membership.confirmed()
        with trio.fail_after(1):
            await returned.wait()
    assert not await _written_soon(membership)  # a new wait waits for bob's


async def test_a_stopped_run_leaves_its_writes_in_flight_for_the_next(
    autojump_clock: trio.abc.Clock,
) -> None:
    """stop() requeues the writes in flight: the next run writes them and wait_written returns."""
    membership = _membership()
    membership.start()
    membership.join("lobby", "ann")
    membership.take_writes()
    membership.stop()  # cancelled before Redis replied
    assert not await _written_soon(membership)
    assert _sent(membership.take_writes()) == [
        (b"EVALSHA", REFRESH_SHA, 1, "p:members:lobby", 1500, "node:ann")
    ]
    membership.confirmed()
    assert await _written_soon(membership)


def test_members_lists_this_nodes_first_and_skips_its_own_entries() -> None:
    """listed() puts local sessions first, takes the others from Redis's reply, once each."""
    membership = _membership()
    membership.join("lobby", "ann")
    reply: ResponseType = [b"node:ann", b"other:bob", b"third:bob", b"no-separator", 7]
    assert membership.listed("lobby", reply) == ["ann", "bob"]
    with pytest.raises(BackplaneError, match="expected a list"):
        membership.listed("lobby", b"OK")


async def test_members_waits_for_the_first_connection_only(autojump_clock: trio.abc.Clock) -> None:
    """connection() raises when not running or lost, and waits while a run first connects."""
    membership = _membership()
    with pytest.raises(BackplaneError, match="not connected"):
        await membership.connection()
    membership.start()
    with trio.move_on_after(1) as waited:  # no connection comes: it waits
        await membership.connection()
    assert waited.cancelled_caught
    membership.lost()
    with pytest.raises(BackplaneError, match="not connected"):
        await membership.connection()


# ------------------------------------------------------------------------ health


async def test_an_outage_is_logged_once_and_counted_once(caplog: pytest.LogCaptureFixture) -> None:
    """Losing two connections logs one WARNING; both back logs INFO and counts one reconnect."""
    caplog.set_level(logging.INFO, logger="trio_rooms")
    wakes = _Wakes()
    health = Health("redis://here", ["commands", "subscribed", "publishing"], changed=wakes)
    for name in ("commands", "subscribed", "publishing"):
        health.up(name)
    assert (health.degraded, health.reconnects, wakes.take()) == (False, 0, 1)  # the first
    health.lost("subscribed", ConnectionError("dropped"))
    health.lost("publishing", trio.TooSlowError())
    assert (health.degraded, wakes.take()) == (True, 1)  # woken once, when it degraded
    health.up("subscribed")
    assert (health.degraded, wakes.take()) == (True, 0)  # the publishing one is still lost
    health.up("publishing")
    assert (health.degraded, health.reconnects, wakes.take()) == (False, 1, 1)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "trio_rooms"]
    assert len(messages) == 2
    assert messages[0][0] == "WARNING"
    assert "lost the subscribed connection to Redis at redis://here" in messages[0][1]
    assert "ConnectionError: dropped" in messages[0][1]
    assert messages[1][0] == "INFO"


async def test_uptime_is_how_long_every_connection_was_up_before_the_loss(
    autojump_clock: trio.abc.Clock,
) -> None:
    """take_uptime() says how long the node was whole before its last loss, then 0."""
    health = Health("redis://here", ["commands"], changed=_ignore)
    health.up("commands")
    await trio.sleep(5)  # sync-ok: mock clock
    health.lost("commands", ConnectionError())
    assert health.take_uptime() == pytest.approx(5)
    assert health.take_uptime() == 0


def test_backoff_doubles_up_to_its_maximum_with_jitter_below() -> None:
    """Delays double from FIRST_BACKOFF to the maximum, each drawn from its upper half."""
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    backoff = Backoff(0.3, uniform=uniform)
    assert [backoff.next() for _ in range(5)] == [FIRST_BACKOFF, 0.1, 0.2, 0.3, 0.3]
    assert all(low == high / 2 for low, high in draws)
    backoff.reset()
    assert backoff.next() == FIRST_BACKOFF
