"""One node of a single-owner cluster with broadcasts, a coalesced message and routes.

For the tests of relayed fan-out and relayed routes (`tests.test_relay_fanout`): node
``a`` owns the room its first client or request asks for, node ``b`` relays to it.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, HttpRequest, Message, Response, Room, Session, route
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

#: Short, as in `tests.owner_app`.
LEASE_TTL = 1.5


@attrs.frozen
class Shout(Message):
    """Broadcast `Said` ``n`` to the whole room."""

    n: int


@attrs.frozen
class Burst(Message):
    """Broadcast `Tick` 0 to ``count - 1``, each followed by a `Mine` to the sender alone."""

    count: int


@attrs.frozen
class Move(Message):
    """Broadcast ``count`` `Moved` of one entity, each ``size`` characters of padding."""

    count: int
    size: int


@attrs.frozen
class Drip(Message):
    """Broadcast `Dripped` 0 to ``count - 1`` to the others under ``policy``, one per turn.

    One per turn, so that a relayed session's queue on the owner empties between them and
    the policy acts where the client is. ``policy``: "disconnect", "drop-oldest" or
    "coalesce" (all of one entity).
    """

    count: int
    size: int
    policy: str


@attrs.frozen
class Leave(Message):
    """Ask the server to close this session with ``code``."""

    code: int


@attrs.frozen
class Hello(Message):
    """Sent on connect: which node runs the room."""

    node: str


@attrs.frozen
class Said(Message):
    n: int


@attrs.frozen
class Tick(Message):
    n: int


@attrs.frozen
class Mine(Message):
    n: int


@attrs.frozen
class Moved(Message):
    """An entity's latest position: a queue keeps only the newest of each entity."""

    delivery = trio_rooms.Coalesce("entity")
    entity: str
    x: int
    pad: str


@attrs.frozen
class Moves(Message):
    """The `Move` is done: ``count`` `Moved` were broadcast."""

    count: int


@attrs.frozen
class Dripped(Message):
    """Filler of a `Drip`: ``x`` counts them, ``entity`` is the key it coalesces by."""

    entity: str
    x: int
    pad: str


@attrs.frozen
class Dripping(Message):
    """The `Drip` is done: ``count`` `Dripped` were broadcast."""

    count: int


#: A `Drip`'s policies by name.
POLICIES: dict[str, trio_rooms.DeliveryPolicy] = {
    "disconnect": trio_rooms.Disconnect(),
    "drop-oldest": trio_rooms.DropOldest(),
    "coalesce": trio_rooms.Coalesce("entity"),
}


ClientMsg = Shout | Burst | Move | Drip | Leave
ServerMsg = Hello | Said | Tick | Mine | Moved | Moves | Dripped | Dripping


class FanoutSession(Session[None, ServerMsg, ClientMsg, "FanoutRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.send(Hello(node=self.room.node))

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case Shout(n=n):
                self.room.broadcast(Said(n=n))
            case Burst(count=count):
                for n in range(count):
                    self.room.broadcast(Tick(n=n))
                    self.send(Mine(n=n))
            case Move(count=count, size=size):
                for x in range(count):
                    self.room.broadcast(Moved(entity="e", x=x, pad="x" * size))
                self.send(Moves(count=count))
            case Drip(count=count, size=size, policy=name):
                policy = POLICIES[name]
                for x in range(count):
                    dripped = Dripped(entity="e", x=x, pad="x" * size)
                    self.room.broadcast(dripped, exclude=[self], policy=policy)
                    await trio.lowlevel.checkpoint()
                self.send(Dripping(count=count))
            case Leave(code=code):
                await self.close(code, "asked to leave")
            case _:
                assert_never(message)


@attrs.frozen
class Info:
    node: str
    sessions: int
    shouts: int


@attrs.frozen
class ShoutBody:
    n: int


class FanoutRoom(Room[FanoutSession]):
    def __init__(self, name: str, node: str = "") -> None:
        super().__init__(name)
        self.node = node
        self.shouts = 0

    @route.get("/info")
    async def info(self, request: HttpRequest) -> Info:
        return Info(node=self.node, sessions=len(self.sessions), shouts=self.shouts)

    @route.post("/shout")
    async def shout(self, request: HttpRequest, body: ShoutBody) -> Info:
        # A write first: the answer waits for it to be durable (the output gate).
        self.shouts += 1
        await self.storage.put("shouts", self.shouts)
        self.broadcast(Said(n=body.n))
        return Info(node=self.node, sessions=len(self.sessions), shouts=self.shouts)

    @route.get("/teapot")
    async def teapot(self, request: HttpRequest) -> Response:
        text = f"{request.method} {request.path} {request.query.get('x')} {request.header('X-Tag')}"
        return Response(418, (("content-type", "text/plain"), ("x-node", self.node)), text.encode())

    @route.get("/boom")
    async def boom(self, request: HttpRequest) -> Info:
        raise RuntimeError("route failed")


@asynccontextmanager
async def open_fanout_node(
    url: str, node: str, config: trio_rooms.RoomsConfig | None = None
) -> AsyncGenerator[tuple[trio_rooms.Rooms[FanoutRoom], int]]:
    """Node ``node`` in this process on the Redis at ``url``, served on a free port."""
    config = config or trio_rooms.RoomsConfig(rate_limit=None, max_connections_per_address=10_000)
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            functools.partial(FanoutRoom, node=node),
            config=config,
            storage=RedisStorage(url),
            cluster=cluster,
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()
