"""One node of a single-owner cluster under attack: hooks counted, storage read-modify-write.

Run as ``python -m tests.attack_app REDIS_URL NODE [PORT]``: serves `AttackRoom` on
127.0.0.1 (PORT 0 or none: a free port) as node NODE and prints ``PORT <n>`` once
listening. In-process nodes (`serve_attack_rooms`) let a test read the owner's room.

Each session's `Hooks` (its ``on_resume`` and ``on_close`` calls) are kept by the room,
and sent in `Tally`, so that a test sees a hook run twice wherever it ran.
"""

from __future__ import annotations

import collections
import functools
import sys
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, HttpRequest, Message, Room, Session, route
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .processes import open_server_process, serve_until_signalled

#: Short, so that failover waits little; long enough for a loaded box's renewals.
LEASE_TTL = 1.5


@attrs.frozen
class Add(Message):
    """Add one to the room's stored ``count`` (get then put, in a transaction) and to the
    session's own ``adds`` (stored with ``update()``)."""


@attrs.frozen
class Echo(Message):
    """Ask for `Echoed` with the same ``n``."""

    n: int


@attrs.frozen
class Flood(Message):
    """Ask for ``count`` `Blob` messages of ``size`` characters each, at once."""

    count: int
    size: int


@attrs.frozen
class Ask(Message):
    """Ask for the room's `Tally`."""


@attrs.frozen
class Welcome(Message):
    """Sent on connect: the node that runs the room and the session's id."""

    node: str
    session: str


@attrs.frozen
class Counted(Message):
    """After an `Add`, once durable: the room's ``count`` and the session's ``adds``."""

    count: int
    adds: int


@attrs.frozen
class Echoed(Message):
    n: int


@attrs.frozen
class Blob(Message):
    data: str


@attrs.frozen
class Tally(Message):
    """The room as its owner sees it: `members()`, the ids of ``sessions``, and by
    session id how often ``on_resume`` ran and the codes ``on_close`` was called with."""

    members: list[str]
    sessions: list[str]
    resumes: dict[str, int]
    closes: dict[str, list[int]]


@attrs.frozen
class Count:
    """What the routes answer: the room's stored ``count``."""

    count: int


@attrs.define
class Adds:
    adds: int = 0


ClientMsg = Add | Ask | Echo | Flood
ServerMsg = Blob | Counted | Echoed | Tally | Welcome


class AttackSession(Session[Adds, ServerMsg, ClientMsg, "AttackRoom"]):
    async def create_data(self, request: ConnectRequest) -> Adds:
        return Adds()

    async def on_resume(self) -> None:
        self.room.resumes[self.id] += 1

    async def on_connect(self) -> None:
        self.send(Welcome(node=self.room.node, session=self.id))

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case Add():
                count = await self.room.add()
                self.data.adds += 1
                await self.update()
                self.send(Counted(count=count, adds=self.data.adds))
            case Ask():
                self.send(await self.room.tally())
            case Echo(n=n):
                self.send(Echoed(n=n))
            case Flood(count=count, size=size):
                for _ in range(count):
                    self.send(Blob(data="x" * size))
            case _:
                assert_never(message)

    async def on_close(self, code: int, reason: str) -> None:
        self.room.closes[self.id].append(code)


class AttackRoom(Room[AttackSession]):
    def __init__(self, name: str, node: str = "") -> None:
        super().__init__(name)
        self.node = node
        self.resumes: collections.Counter[str] = collections.Counter()
        self.closes: collections.defaultdict[str, list[int]] = collections.defaultdict(list)

    async def add(self) -> int:
        """Read, then write, the stored ``count`` in one transaction: its new value."""
        async with self.storage.transaction():
            count = (await self.storage.get("count", int) or 0) + 1
            await self.storage.put("count", count)
        return count

    async def tally(self) -> Tally:
        return Tally(
            members=sorted(await self.members()),
            sessions=sorted(self.sessions),
            resumes=dict(self.resumes),
            closes=dict(self.closes),
        )

    @route.post("/add")
    async def add_route(self, request: HttpRequest) -> Count:
        return Count(count=await self.add())

    @route.get("/count")
    async def count(self, request: HttpRequest) -> Count:
        return Count(count=await self.storage.get("count", int) or 0)


def attack_config(**changes: object) -> trio_rooms.RoomsConfig:
    """The nodes' config: no rate limit (the tests send as fast as they can), many
    clients from one address; ``changes`` on top."""
    config = trio_rooms.RoomsConfig(rate_limit=None, max_connections_per_address=10_000)
    return attrs.evolve(config, **changes)


@asynccontextmanager
async def serve_attack_rooms(
    url: str, node: str, config: trio_rooms.RoomsConfig | None = None
) -> AsyncGenerator[tuple[trio_rooms.Rooms[AttackRoom], int]]:
    """Node ``node`` in this process, served on a free port: its rooms and the port."""
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            functools.partial(AttackRoom, node=node),
            config=config or attack_config(),
            storage=RedisStorage(url),
            cluster=cluster,
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def main(url: str, node: str, port: int) -> None:
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with trio_rooms.open_rooms(
        functools.partial(AttackRoom, node=node),
        config=attack_config(),
        storage=RedisStorage(url),
        cluster=cluster,
    ) as rooms:
        await serve_until_signalled(rooms, port)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)


def open_attack_node(
    url: str, node: str, port: int = 0
) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """Node ``node`` on Redis ``url`` as a subprocess: yields it and its bound port."""
    return open_server_process("tests.attack_app", url, node, str(port))
