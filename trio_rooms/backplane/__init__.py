"""Backplanes: what carries a room's broadcasts and membership between nodes.

Each implementation lives in its own module and imports its client library there, so
``import trio_rooms`` (and this package) loads none of them::

    from trio_rooms.backplane.redis import RedisBackplane  # needs trio_rooms[redis]

    async with trio_rooms.open_rooms(ChatRoom, backplane=RedisBackplane(url)) as rooms:
        ...

The port they implement is `trio_rooms.Backplane`. The single-owner mode's Redis
implementation, `trio_rooms.backplane.redis.RedisCluster` (one live room per name
across nodes, the other nodes' clients relayed to it), implements `trio_rooms.Cluster`::

    async with trio_rooms.open_rooms(
        GameRoom, storage=RedisStorage(url), cluster=RedisCluster(url)
    ) as rooms:
        ...
"""

from __future__ import annotations

__all__: list[str] = []
