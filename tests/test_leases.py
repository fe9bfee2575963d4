"""Room leases on a real redis-server: one holder per room, growing tokens, giving up on time.

Several `Leases` in one process stand for several nodes. A node is cut off from Redis
through a `SilentProxy` (its connection stays open and answers nothing, as when a node
is paused or partitioned). Waits are on the leases' own events (`Lease.ended`,
`Leases.wait_renewed`), each bounded by ``fail_after``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import coredis
import pytest
import trio

from trio_rooms import BackplaneError
from trio_rooms.backplane._leases import Leases

from .redis_server import RedisServer
from .redis_server import redis_server as redis_server  # the fixture
from .silent_proxy import SilentProxy

TTL = 0.6
TIMEOUT = 0.1
#: Bounds every wait: a few TTLs.
PATIENCE = 5.0

OpenNode = Callable[..., AbstractAsyncContextManager[Leases]]


@pytest.fixture
async def open_node(redis_server: RedisServer) -> OpenNode:
    """Start a node's `Leases` (on ``url``, Redis by default) for as long as the block runs."""

    @asynccontextmanager
    async def open_one(name: str, url: str | None = None) -> AsyncGenerator[Leases]:
        leases = Leases(url or redis_server.url, node_id=name, ttl=TTL, timeout=TIMEOUT)
        async with trio.open_nursery() as inner:
            await inner.start(leases.run)
            yield leases
            inner.cancel_scope.cancel()

    return open_one


async def test_each_of_fifty_rooms_taken_at_once_by_three_nodes_has_one_holder(
    open_node: OpenNode, redis_server: RedisServer
) -> None:
    """Three nodes asking for the same 50 rooms at once: each room goes to exactly one."""
    rooms = [f"room-{n}" for n in range(50)]
    won: dict[str, list[str]] = {room: [] for room in rooms}
    async with open_node("a") as a, open_node("b") as b, open_node("c") as c:

        async def take(node: Leases, room: str) -> None:
            if await node.acquire(room) is not None:
                won[room].append(node.node_id)

        async with trio.open_nursery() as nursery:
            for room in rooms:
                for node in (a, b, c):
                    nursery.start_soon(take, node, room)
        assert all(len(holders) == 1 for holders in won.values()), won
        for room in rooms:
            owner = await a.owner(room)
            assert owner is not None
            assert owner[0] == won[room][0]
        assert sorted(a.held() + b.held() + c.held()) == sorted(rooms)


async def test_every_acquisition_gets_a_larger_fencing_token(open_node: OpenNode) -> None:
    """Taken, given back and taken again, by one node or another: the token only grows."""
    async with open_node("a") as a, open_node("b") as b:
        tokens: list[int] = []
        for node in (a, b, a):
            lease = await node.acquire("game")
            assert lease is not None
            tokens.append(lease.token)
            assert await node.acquire("game") is lease  # held: the same lease
            await node.release(lease)
            assert lease.ended.is_set()
        assert tokens == sorted(set(tokens))


async def test_a_renewed_lease_outlives_its_ttl_and_keeps_others_out(open_node: OpenNode) -> None:
    """A lease its node keeps renewing is still valid three TTLs later; nobody else gets it."""
    async with open_node("a") as a, open_node("b") as b:
        lease = await a.acquire("game")
        assert lease is not None
        start = trio.current_time()
        with trio.fail_after(PATIENCE):
            while trio.current_time() < start + 3 * TTL:
                await a.wait_renewed()
        assert lease.valid
        assert await b.acquire("game") is None
        assert a.held() == ["game"]


async def test_a_released_lease_goes_to_the_next_node_at_once(open_node: OpenNode) -> None:
    """Once given back, the room is free for another node without waiting for the TTL."""
    async with open_node("a") as a, open_node("b") as b:
        lease = await a.acquire("game")
        assert lease is not None
        await a.release(lease)
        taken = await b.acquire("game")
        assert taken is not None
        assert taken.token > lease.token
        assert await a.owner("game") == ("b", taken.token)


async def test_a_node_cut_off_from_redis_gives_up_before_another_can_take_over(
    open_node: OpenNode, redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    """A silenced holder ends its lease on its own clock before Redis lets another take it."""
    proxy = SilentProxy(target=redis_server.port)
    await nursery.start(proxy.serve)
    async with (
        open_node("a", f"redis://127.0.0.1:{proxy.port}/0") as a,
        open_node("b") as b,
    ):
        lease = await a.acquire("game")
        assert lease is not None
        proxy.silence()
        ended_at: list[float] = []

        async def note_the_end() -> None:
            await lease.ended.wait()
            ended_at.append(trio.current_time())

        nursery.start_soon(note_the_end)
        with trio.fail_after(PATIENCE):
            while True:
                asked = trio.current_time()
                taken = await b.acquire("game")
                if taken is not None:
                    break
                await b.wait_renewed()  # a pause of a renewal period between tries
        assert ended_at, "the old holder still counted the lease as its own"
        assert ended_at[0] <= asked
        assert not lease.valid
        assert taken.token > lease.token


async def test_a_lease_taken_away_in_redis_ends_at_the_next_renewal(
    open_node: OpenNode, redis_server: RedisServer
) -> None:
    """If the key is gone (flushed, failed over) and another node took it, the holder learns."""
    async with open_node("a") as a, open_node("b") as b:
        lease = await a.acquire("game")
        assert lease is not None
        async with coredis.Redis.from_url(redis_server.url) as client:
            await client.delete(["trio_rooms:lease:game"])
        taken = await b.acquire("game")
        assert taken is not None
        with trio.fail_after(PATIENCE):
            await lease.ended.wait()
        assert a.held() == []
        assert taken.token > lease.token


async def test_without_a_connection_acquire_raises_backplane_error() -> None:
    """Before `run` has connected, taking a lease is a clear error, not a hang."""
    leases = Leases("redis://127.0.0.1:1/0", ttl=TTL, timeout=TIMEOUT)
    with pytest.raises(BackplaneError, match="no connection"):
        await leases.acquire("game")


def test_a_ttl_too_short_for_its_timeout_is_refused() -> None:
    """Renewals must fit several times into the part of the TTL a holder counts on."""
    with pytest.raises(ValueError, match="too little time"):
        Leases("redis://localhost", ttl=1.0, timeout=0.5)
    with pytest.raises(ValueError, match="safety"):
        Leases("redis://localhost", safety=1.0)


async def test_holds_follows_the_lease_by_the_local_clock_and_its_end(open_node: OpenNode) -> None:
    """`holds` (asked at every relayed reply) is `Lease.valid` of the held lease: False
    once its local deadline is past, before the lapse task ends it; True past it while
    kept; False once released, and for a room never taken."""
    async with open_node("a") as a:
        assert not a.holds("game")
        lease = await a.acquire("game")
        assert lease is not None
        assert a.holds("game")
        # No checkpoint from here to the asserts: the lapse task cannot end it meanwhile.
        lease.valid_until = trio.current_time()
        assert a.held() == ["game"]
        assert not lease.ended.is_set()
        assert not a.holds("game")
        assert not lease.valid
        lease.kept = True
        assert a.holds("game")
        assert lease.valid
        lease.kept = False
        lease.valid_until = trio.current_time() + PATIENCE  # (a renewal sets it again)
        assert a.holds("game")
        await a.release(lease)
        assert not a.holds("game")
        assert not lease.valid
