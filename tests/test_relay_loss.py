"""A relay's loss while its owner lives: every message of the client handled once, in order.

Two nodes of `tests.owner_app` in this process on one real redis-server: node ``a``
owns room ``game`` (its client comes first), node ``b`` relays its client to ``a``.
Redis drops the relay connections (CLIENT KILL) of the client's node, of the owner, or
of both, while the client sends `Add`s: before the drop, after it but before its node
notices, and once it noticed. Each `Add` is answered by one `Counted` whose stored
count is one more than the last: none is lost, none handled twice, none out of order.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import pytest
import trio

import trio_rooms

from .owner_app import CounterRoom, serve_owner_rooms
from .redis_server import RedisServer
from .refusing_proxy import RefusingProxy
from .relay_bursts import Dropped, relay_ids
from .sockets import RawClient, open_raw

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
ADD = '{"type": "add"}'
#: Bounds every wait: a few lease TTLs.
PATIENCE = 30.0


class _Relays:
    """Which of Redis's relay connections are which node's (a reader and a writer each)."""

    def __init__(self, redis_server: RedisServer, owner: set[str]) -> None:
        self._redis = redis_server
        self.owner = owner
        self.client = relay_ids(redis_server) - owner
        assert len(self.owner) == len(self.client) == 2

    def drop(self, dropped: Dropped) -> None:
        """Make Redis drop the ``dropped`` node's relay connections at once."""
        ids = {"owner": self.owner, "client's node": self.client, "both": self.owner | self.client}
        for client_id in ids[dropped]:
            assert self._redis.command("CLIENT", "KILL", "ID", client_id) == b":1\r\n"

    def reconnected(self, dropped: Dropped) -> None:
        """After ``dropped``'s connections came back: learn theirs (not after "both")."""
        new = relay_ids(self._redis) - self.owner - self.client
        assert len(new) == 2
        if dropped == "owner":
            self.owner = new
        else:
            self.client = new


async def _counted_until(client: RawClient, stored: int) -> tuple[list[int], int]:
    """The stored counts of the `Counted` replies up to ``stored``, and the welcomes."""
    counts: list[int] = []
    welcomes = 0
    while not counts or counts[-1] < stored:
        message = await client.receive_json()
        if message["type"] == "welcome":
            welcomes += 1
        else:
            assert message["type"] == "counted"
            assert message["stored"] == message["local"]  # the owner's memory lived on
            stored_now = message["stored"]
            assert isinstance(stored_now, int)
            counts.append(stored_now)
    return counts, welcomes


@asynccontextmanager
async def _two_nodes(
    redis_server: RedisServer,
) -> AsyncGenerator[tuple[trio_rooms.Rooms[CounterRoom], RawClient, _Relays]]:
    """Node ``b`` (its rooms), its client relayed to node ``a``, and the relay connections."""
    url = redis_server.url
    async with serve_owner_rooms(url, "a") as (_, port_a), open_raw(port_a, GAME) as on_a:
        assert (await on_a.receive_json())["node"] == "a"
        owner = relay_ids(redis_server)
        async with serve_owner_rooms(url, "b") as (rooms_b, port_b), open_raw(port_b, GAME) as on_b:
            assert await on_b.receive_json() == {"type": "welcome", "node": "a", "starts": 1}
            yield rooms_b, on_b, _Relays(redis_server, owner)


@pytest.mark.parametrize("dropped", ["owner", "client's node", "both"])
async def test_messages_sent_around_a_relay_drop_are_each_answered_once_in_order(
    redis_server: RedisServer, dropped: Dropped
) -> None:
    """Adds sent just before Redis drops relay connections, just after, and once the
    client's node noticed all get one answer each, in order, as does the next one."""
    with trio.fail_after(PATIENCE):
        async with _two_nodes(redis_server) as (rooms_b, on_b, relays):
            await on_b.send_text(ADD)
            assert await _counted_until(on_b, 1) == ([1], 0)
            await on_b.send_text(ADD)  # handed to the link, not yet confirmed
            relays.drop(dropped)
            await on_b.send_text(ADD)  # before its node notices
            if dropped != "owner":  # the client's node notices its own link's loss only
                await rooms_b.wait_statistics(lambda stats: stats.relayed_sessions == 0)
            await on_b.send_text(ADD)  # noticed (or not, when the owner's link broke)
            assert await _counted_until(on_b, 4) == ([2, 3, 4], 1)  # moved: welcomed again
            await on_b.send_text(ADD)
            assert await _counted_until(on_b, 5) == ([5], 0)


async def test_a_counter_counts_exactly_across_several_relay_drops(
    redis_server: RedisServer,
) -> None:
    """A client adding on through five drops of relay connections (the owner's, its own
    node's, both) is answered once per add, in order, and the counter ends exact."""
    with trio.fail_after(2 * PATIENCE):
        async with _two_nodes(redis_server) as (_, on_b, relays):
            stored = 0
            rounds: list[Dropped] = ["owner", "client's node", "owner", "client's node", "both"]
            for dropped in rounds:
                for _ in range(3):
                    await on_b.send_text(ADD)
                relays.drop(dropped)
                for _ in range(3):
                    await on_b.send_text(ADD)
                counts, welcomes = await _counted_until(on_b, stored + 6)
                assert counts == list(range(stored + 1, stored + 7))
                assert welcomes == 1
                stored += 6
                if dropped != "both":
                    relays.reconnected(dropped)
            await on_b.send_text(ADD)
            assert await _counted_until(on_b, stored + 1) == ([stored + 1], 0)


async def test_a_relayed_session_waits_for_its_nodes_relays_to_reconnect_after_a_backoff(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    """The client's node loses its relay connections and its next two attempts to connect
    again are refused: its link backs off (0.3 s, then 0.6 s, then 1.2 s) and connects
    back more than ``lease_ttl`` after the loss. The session waits for it and moves to
    its owner, its adds answered once each, in order, instead of closing with 1012."""
    proxy = RefusingProxy(redis_server.port)
    await nursery.start(proxy.serve)
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with serve_owner_rooms(url, "a") as (_, port_a), open_raw(port_a, GAME) as on_a:
            assert (await on_a.receive_json())["node"] == "a"
            owner = relay_ids(redis_server)
            async with (
                serve_owner_rooms(proxy.url, "b") as (rooms_b, port_b),
                open_raw(port_b, GAME) as on_b,
            ):
                assert await on_b.receive_json() == {"type": "welcome", "node": "a", "starts": 1}
                await on_b.send_text(ADD)
                assert await _counted_until(on_b, 1) == ([1], 0)
                proxy.refusing = True
                _Relays(redis_server, owner).drop("client's node")
                await on_b.send_text(ADD)
                await rooms_b.wait_statistics(lambda stats: stats.relayed_sessions == 0)
                await proxy.wait_refused(2)  # the link's first two attempts
                proxy.refusing = False
                await on_b.send_text(ADD)
                assert await _counted_until(on_b, 3) == ([2, 3], 1)  # moved: welcomed again
