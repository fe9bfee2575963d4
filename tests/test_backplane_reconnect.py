"""RedisBackplane against a real redis-server: a lost connection is made again alone.

Redis's own ``CLIENT LIST`` tells which connections survived: each has an id that a new
connection never reuses.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from contextlib import contextmanager
from typing import Literal

import coredis
import trio
from coredis import PureToken

from .redis_server import RedisServer
from .redis_server import redis_server as redis_server  # the fixture
from .test_backplane_redis import fast, running, until_delivered, until_reconnected

_Kind = Literal[PureToken.PUBSUB, PureToken.NORMAL]


async def _backplane_ids(admin: coredis.Redis[bytes], kind: _Kind) -> set[int]:
    """The ids of the backplanes' connections of ``kind``."""
    clients = await admin.client_list(type_=kind)
    return {client["id"] for client in clients if client["name"] == "trio_rooms.backplane"}


class _Signal(logging.Handler):
    """Sets ``event`` on the first WARNING logged by trio_rooms: a connection was lost."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


@contextmanager
def _warned() -> Generator[trio.Event]:
    """An event set once trio_rooms logs a WARNING, while the block runs."""
    signal = _Signal()
    logger = logging.getLogger("trio_rooms")
    logger.addHandler(signal)
    try:
        yield signal.event
    finally:
        logger.removeHandler(signal)


async def test_a_lost_subscribed_connection_is_made_again_alone(
    redis_server: RedisServer,
) -> None:
    """Redis dropping A's subscribed connection keeps A's others; A's publishes meanwhile arrive."""
    a = fast(redis_server.url)
    b = fast(redis_server.url)
    a.subscribe("lobby")  # before run: the first subscribed connection subscribes at once
    async with coredis.Redis.from_url(redis_server.url) as admin, running(a) as got_a:
        # The roles connect in turn (commands, subscribed, presence, publishing): once
        # Redis has confirmed a publish, all four connections are made.
        a.publish("lobby", b"probe:connected")
        with trio.fail_after(5):
            await a.wait_statistics(lambda stats: stats.published == 1)
        (a_subscribed,) = await _backplane_ids(admin, PureToken.PUBSUB)
        a_others = await _backplane_ids(admin, PureToken.NORMAL)
        assert len(a_others) == 3
        async with running(b) as got_b:
            b.subscribe("lobby")
            await until_delivered(a, got_b, "lobby")
            await until_delivered(b, got_a, "lobby")

            with _warned() as lost:
                assert await admin.client_kill(identifier=a_subscribed) == 1
                with trio.fail_after(2):
                    await lost.wait()
            # Woken when A noticed; its new subscribed connection needs round trips yet.
            assert a.statistics().degraded
            for i in range(100):
                a.publish("lobby", b"%d" % i)
            with trio.fail_after(5):
                await got_b.wait_until(lambda: len(got_b.payloads("lobby")) == 100)
            assert got_b.payloads("lobby") == [b"%d" % i for i in range(100)]

            await until_delivered(b, got_a, "lobby")  # A is subscribed again
            assert a_others <= await _backplane_ids(admin, PureToken.NORMAL)
            assert a_subscribed not in await _backplane_ids(admin, PureToken.PUBSUB)
            await until_reconnected(a)
            statistics = a.statistics()
            assert statistics.dropped == 0
            assert statistics.reconnects == 1


async def test_lost_normal_connections_leave_the_subscribed_ones_alone(
    redis_server: RedisServer,
) -> None:
    """CLIENT KILL TYPE normal: those connections come back; the subscribed ones never went."""
    a = fast(redis_server.url)
    b = fast(redis_server.url)
    async with (
        coredis.Redis.from_url(redis_server.url) as admin,
        running(a) as got_a,
        running(b) as got_b,
    ):
        a.subscribe("lobby")
        b.subscribe("lobby")
        a.join("lobby", "ann")
        await until_delivered(a, got_b, "lobby")
        await until_delivered(b, got_a, "lobby")
        subscribed = await _backplane_ids(admin, PureToken.PUBSUB)
        assert len(subscribed) == 2

        assert await admin.client_kill(type_=PureToken.NORMAL) == 6
        await until_delivered(a, got_b, "lobby")
        await until_delivered(b, got_a, "lobby")
        assert await _backplane_ids(admin, PureToken.PUBSUB) == subscribed
        assert "ann" in await b.members("lobby")
        await until_reconnected(a, b)
        for backplane in (a, b):
            assert backplane.statistics().reconnects == 1
