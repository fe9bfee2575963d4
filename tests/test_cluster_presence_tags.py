"""Presence and tags with one owner per room: a relayed session is one of the owner's.

Two nodes in this process on one real redis-server (`RedisCluster`); node a owns the
room, node b relays its clients there. What a relayed client sees of presence and of
tagged broadcasts is what a client of the owner sees.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
import trio

import trio_rooms
from trio_rooms import RoomsConfig
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.client import PresenceChanged, RoomClient, open_room_client
from trio_rooms.storage.redis import RedisStorage

from .presence_app import ClientMsg, Device, Done, Join, PresenceRoom, PresenceSession
from .redis_server import RedisServer
from .tags_app import Said, TagRoom, TagSession, TagsSet

pytestmark = pytest.mark.slow

LEASE_TTL = 1.5
RoomT = TypeVar("RoomT", bound=trio_rooms.Room[Any])


@asynccontextmanager
async def _node(
    url: str, node: str, room: type[RoomT]
) -> AsyncGenerator[tuple[trio_rooms.Rooms[RoomT], int]]:
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            room, config=RoomsConfig(rate_limit=None), storage=RedisStorage(url), cluster=cluster
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


def _url(port: int, query: str = "") -> str:
    return f"ws://127.0.0.1:{port}/rooms/lobby/websocket" + (f"?{query}" if query else "")


async def _changed(watcher: RoomClient[Done, ClientMsg, Device]) -> PresenceChanged[Device]:
    async for event in watcher.events:
        if isinstance(event, PresenceChanged):
            return event
    raise AssertionError("the events ended")


async def test_a_relayed_watcher_sees_the_presence_of_the_owners_clients(
    redis_server: RedisServer,
) -> None:
    """A watcher on node b gets the state, then the join made by a client of node a."""
    url = redis_server.url
    with trio.fail_after(20):
        async with (
            _node(url, "a", PresenceRoom) as (rooms_a, port_a),
            _node(url, "b", PresenceRoom) as (_, port_b),
        ):
            await rooms_a.get("lobby")  # node a owns the room
            async with (
                open_room_client(
                    _url(port_b, "watch"), PresenceSession, presence=Device
                ) as watcher,
                open_room_client(_url(port_a), PresenceSession) as actor,
            ):
                assert await _changed(watcher) == PresenceChanged({}, {}, reset=True)
                actor.send(Join(1, "ann", "phone"))
                joined = await _changed(watcher)
                assert [meta.meta.name for meta in joined.joins["ann"]] == ["phone"]
                assert [meta.meta.name for meta in watcher.presence["ann"]] == ["phone"]


async def test_a_tagged_broadcast_reaches_exactly_the_tagged_relayed_sessions(
    redis_server: RedisServer,
) -> None:
    """Of two clients of node b, only the one tagged red gets the owner's red broadcast."""
    url = redis_server.url
    with trio.fail_after(20):
        async with (
            _node(url, "a", TagRoom) as (rooms_a, _),
            _node(url, "b", TagRoom) as (_, port_b),
        ):
            room = await rooms_a.get("lobby")
            async with (
                open_room_client(_url(port_b, "tags=red"), TagSession) as red,
                open_room_client(_url(port_b, "tags=blue"), TagSession) as blue,
            ):
                for client in (red, blue):
                    assert isinstance(await client.receive(), TagsSet)  # its tags are set
                room.broadcast(Said("for red"), tags={"red"})
                room.broadcast(Said("for all"))
                assert await red.receive() == Said("for red")
                assert await red.receive() == Said("for all")
                assert await blue.receive() == Said("for all")
