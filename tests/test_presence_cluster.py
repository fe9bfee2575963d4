"""Presence across nodes on one real redis-server: one order of diffs, and dead nodes' leaves."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import coredis
import pytest
import trio

import trio_rooms
from trio_rooms._wire import PresenceDiffFrame
from trio_rooms.backplane.redis import RedisBackplane

from .presence_app import (
    PresencePeer,
    PresenceRoom,
    State,
    apply_diff,
    connect,
    devices,
    open_presence_node,
)
from .redis_server import RedisServer
from .redis_witness import next_message, open_keyspace_events


async def _node(
    url: str, ttl: float, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    config = trio_rooms.RoomsConfig(rate_limit=None)
    backplane = RedisBackplane(url, ttl=ttl)
    async with trio_rooms.open_rooms(PresenceRoom, config=config, backplane=backplane) as rooms:
        await trio_rooms.serve_websocket(rooms, "127.0.0.1", 0, task_status=task_status)


def _typing(meta: object) -> bool:
    assert isinstance(meta, dict)
    return meta.get("typing") is True  # pyright: ignore[reportUnknownMemberType] - a wire map


def _states(start: State, diffs: list[PresenceDiffFrame]) -> list[str]:
    """Each state a subscriber went through from ``start``, as comparable text."""
    state = {key: list(metas) for key, metas in start.items()}
    seen = [repr(sorted(state.items()))]
    for diff in diffs:
        apply_diff(state, diff)
        seen.append(repr(sorted(state.items())))
    return seen


@pytest.fixture
async def two_nodes(
    redis_server: RedisServer, nursery: trio.Nursery
) -> AsyncGenerator[tuple[int, int]]:
    port_a: int = await nursery.start(_node, redis_server.url, 30.0)
    port_b: int = await nursery.start(_node, redis_server.url, 30.0)
    yield port_a, port_b
    nursery.cancel_scope.cancel()


async def test_both_nodes_see_every_change_as_the_same_diffs_in_one_order(
    two_nodes: tuple[int, int],
) -> None:
    """Changes made on two nodes at once reach the subscribers of both in one order."""
    port_a, port_b = two_nodes
    async with (
        connect(port_a) as watch_a,
        connect(port_b) as watch_b,
        connect(port_a) as ann_phone,
        connect(port_b) as ann_laptop,
        connect(port_a) as bob,
        connect(port_b) as carol,
    ):
        await watch_a.watch()
        await watch_b.watch()

        peers = {"ann": [ann_phone, ann_laptop], "bob": [bob], "carol": [carol]}
        for key, devices_of_key in peers.items():
            for n, peer in enumerate(devices_of_key):
                await peer.join(key, f"device-{n}")
        # Both nodes follow the room once each has every presence.
        for watcher in (watch_a, watch_b):
            with trio.fail_after(10):
                await watcher.until(lambda state: sum(map(len, state.values())) == 4)
            watcher.diffs.clear()
        assert watch_a.state == watch_b.state
        start = dict(watch_a.state or {})

        async def churn(peer: PresencePeer) -> None:
            for n in range(5):
                await peer.update("web", typing=n % 2 == 0)

        async with trio.open_nursery() as nursery:
            for peer in (ann_phone, ann_laptop, bob, carol):
                nursery.start_soon(churn, peer)
        await carol.leave()

        def settled(state: State) -> bool:
            # Every update in (the last of each is typing) and carol gone, on this node.
            metas = [meta for metas in state.values() for _, meta in metas]
            return "carol" not in state and len(metas) == 3 and all(_typing(m) for m in metas)

        # 20 updates from two nodes at once, and a leave: a node may send the changes of
        # one turn as one diff, so the nodes may group them apart, but never reorder them.
        for peer in (watch_a, watch_b):
            with trio.fail_after(10):
                await peer.until(settled)
        assert watch_a.state == watch_b.state
        assert watch_a.state is not None
        assert devices(watch_a.state) == {"ann": ["web", "web"], "bob": ["web"]}
        seen_a, seen_b = _states(start, watch_a.diffs), _states(start, watch_b.diffs)
        common = set(seen_a) & set(seen_b)
        assert [s for s in seen_a if s in common] == [s for s in seen_b if s in common]
        assert seen_a[-1] == seen_b[-1]
        async with connect(port_b) as late:
            await late.watch()
            assert late.state == watch_a.state


@pytest.mark.slow
async def test_a_node_killed_with_sigkill_shows_up_as_leaves_once_its_time_ran_out(
    redis_server: RedisServer,
) -> None:
    """The presences of a kill -9'd node leave every other node as one diff, published
    right as Redis removes the node for its time having run out (by Redis's clock).

    How soon (4/3 of the ttl at most) is a benchmark's figure, not this test's."""
    ttl = 1.0
    nodes_key, channel = b"trio_rooms:presence-nodes:lobby", b"trio_rooms:presence:lobby"
    redis = coredis.Redis.from_url(redis_server.url)
    async with (
        redis,
        open_presence_node(redis_server.url, ttl) as (node_a, port_a),
        open_presence_node(redis_server.url, ttl) as (_, port_b),
        connect(port_b) as watcher,
        connect(port_b) as stays,
    ):
        await watcher.watch()
        await stays.join("bob", "web")
        async with connect(port_a) as phone, connect(port_a) as laptop:
            await phone.join("ann", "phone")
            await laptop.join("ann", "laptop")
            with trio.fail_after(10):
                await watcher.until(lambda s: len(s.get("ann", [])) == 2 and "bob" in s)
            async with open_keyspace_events(redis_server, redis, [nodes_key], "z") as events:
                await events.call(b"SUBSCRIBE", channel)
                node_a.kill()  # SIGKILL: no close frames, no cleanup in Redis
                with trio.fail_after(10):
                    state = await watcher.until(lambda s: "ann" not in s)
                    # In Redis's order: refreshes, the nodes past their time removed by
                    # score (a's, never a ZREM), then the diff of that same script.
                    seen = [await next_message(events)]
                    while seen[-1][0] != channel:
                        seen.append(await next_message(events))
        assert [data for _, data in seen[-2:-1]] == [b"zremrangebyscore"], seen
        assert {data for _, data in seen[:-2]} <= {b"zadd"}, seen
        assert await redis.zcard(nodes_key) == 1  # b's
        assert devices(state) == {"bob": ["web"]}
        # Both of ann's presences leave in one diff, which the room's order numbers.
        assert sorted(watcher.diffs[-1].leaves) == ["ann"]
        assert len(watcher.diffs[-1].leaves["ann"]) == 2
