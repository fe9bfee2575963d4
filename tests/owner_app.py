"""One node of a single-owner cluster: a counter room on Redis storage and leases.

Run as ``python -m tests.owner_app REDIS_URL NODE [PORT]``: serves `CounterRoom` on
127.0.0.1 (PORT 0 or none: a free port) as node NODE and prints ``PORT <n>`` once
listening. In-process tests open the same rooms with `open_owner_rooms`.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NamedTuple, assert_never

import attrs
import orjson
import trio

import trio_rooms
from trio_rooms import ConnectRequest, HttpRequest, Message, Room, Session, route
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .processes import open_server_process, serve_until_signalled
from .sockets import RawClient, open_raw

#: Short, so that failover tests wait little; long enough for a loaded box's renewals.
LEASE_TTL = 1.5


@attrs.frozen
class Add(Message):
    """Add one to the stored counter and to the room's in-memory one."""


@attrs.frozen
class Arm(Message):
    """Set the alarm ``ring`` to fall due in ``delay`` seconds."""

    delay: float


@attrs.frozen
class Leave(Message):
    """Ask the server to close this session with ``code``."""

    code: int


@attrs.frozen
class Flood(Message):
    """Ask for ``count`` `Blob` messages of ``size`` characters each, at once."""

    count: int
    size: int


@attrs.frozen
class SendTo(Message):
    """Send `Blob` messages to the session ``session`` by its id until it has left the
    room, each once the one before is durable (its client may go meanwhile), then one more."""

    session: str
    size: int


@attrs.frozen
class Who(Message):
    """Ask who is in the room."""


@attrs.frozen
class Welcome(Message):
    """Sent on connect: which node runs the room, and how often it was started."""

    node: str
    starts: int


@attrs.frozen
class Counted(Message):
    """The counters after an `Add`: sent once the write is durable (the output gate)."""

    stored: int
    local: int


@attrs.frozen
class Members(Message):
    """The room's `members()` and the ids of its `sessions`, as its owner sees them."""

    members: list[str]
    sessions: list[str]


@attrs.frozen
class Blob(Message):
    """Filler, for a client that does not read."""

    data: str


@attrs.frozen
class Sent(Message):
    """The `SendTo` is done: ``count`` `Blob` messages were sent before the session left."""

    count: int


@attrs.frozen
class Rang(Message):
    """The alarm ``ring`` fired on ``node``; ``rings`` counts its firings, as stored."""

    node: str
    rings: int


@attrs.frozen
class Started:
    """The answer of ``/slow``: the node that runs the room, and how often it was started."""

    node: str
    starts: int


ClientMsg = Add | Arm | Flood | Leave | SendTo | Who
ServerMsg = Welcome | Blob | Counted | Members | Rang | Sent


class CounterSession(Session[None, ServerMsg, ClientMsg, "CounterRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.send(Welcome(node=self.room.node, starts=self.room.starts))

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case Add():
                storage = self.room.storage
                stored = (await storage.get("count", int) or 0) + 1
                await storage.put("count", stored)
                self.room.local += 1
                self.send(Counted(stored=stored, local=self.room.local))
            case Arm(delay=delay):
                await self.room.set_alarm("ring", delay=delay)
            case Flood(count=count, size=size):
                for _ in range(count):
                    self.send(Blob(data="x" * size))
            case Leave(code=code):
                await self.close(code, "asked to leave")
            case SendTo(session=session, size=size):
                target = self.room.sessions[session]
                sent = 0
                while session in self.room.sessions:
                    target.send(Blob(data="x" * size))
                    sent += 1
                    # Out now (the event's writes, its replay log's, are durable at once),
                    # and paced by Redis: a client that went is not flooded until seen gone.
                    await self.room.storage.flush()
                target.send(Blob(data="late"))  # to a session that has ended: dropped
                self.send(Sent(count=sent))
            case Who():
                members = list(await self.room.members())
                self.send(Members(members=members, sessions=sorted(self.room.sessions)))
            case _:
                assert_never(message)

    async def on_close(self, code: int, reason: str) -> None:
        self.room.closes.append(code)


class CounterRoom(Room[CounterSession]):
    def __init__(self, name: str, node: str = "") -> None:
        super().__init__(name)
        #: The node it runs on (`open_owner_rooms` binds it).
        self.node = node
        self.starts = 0
        self.local = 0
        #: The close code of every session that ended, in order.
        self.closes: list[int] = []

    async def on_start(self) -> None:
        self.starts = (await self.storage.get("starts", int) or 0) + 1
        await self.storage.put("starts", self.starts)

    @route.get("/slow")
    @route.post("/slow")
    async def slow(self, request: HttpRequest) -> Started:
        """Waits for ever in the room's first start (its node is to be killed), else answers.

        Says on stdout that it waits, once per request: ``WAITING <method>``.
        """
        if self.starts == 1:
            print(f"WAITING {request.method}", flush=True)  # to the test that runs this node
            await trio.sleep_forever()
        return Started(node=self.node, starts=self.starts)

    async def on_alarm(self, name: str, attempt: int) -> None:
        rings = (await self.storage.get("rings", int) or 0) + 1
        await self.storage.put("rings", rings)
        self.broadcast(Rang(node=self.node, rings=rings))


@asynccontextmanager
async def open_owner_rooms(
    url: str, node: str, *, config: trio_rooms.RoomsConfig | None = None
) -> AsyncGenerator[trio_rooms.Rooms[CounterRoom]]:
    """Node ``node``'s rooms, on the storage and leases in the Redis at ``url``."""

    # The tests send as fast as they can and run many clients from one address.
    config = config or trio_rooms.RoomsConfig(
        rate_limit=None, max_connections_per_address=10_000, alarm_retry_delay=0.2
    )
    cluster = RedisCluster(url, node_id=node, lease_ttl=LEASE_TTL, timeout=0.3)
    async with trio_rooms.open_rooms(
        functools.partial(CounterRoom, node=node),
        config=config,
        storage=RedisStorage(url),
        cluster=cluster,
    ) as rooms:
        yield rooms


@asynccontextmanager
async def serve_owner_rooms(
    url: str, node: str, config: trio_rooms.RoomsConfig | None = None
) -> AsyncGenerator[tuple[trio_rooms.Rooms[CounterRoom], int]]:
    """Node ``node`` in this process, served on a free port: its rooms and the port."""
    async with open_owner_rooms(url, node, config=config) as rooms, trio.open_nursery() as nursery:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def main(url: str, node: str, port: int) -> None:
    async with open_owner_rooms(url, node) as rooms:
        await serve_until_signalled(rooms, port)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)


def open_owner_node(
    url: str, node: str, port: int = 0
) -> AbstractAsyncContextManager[tuple[trio.Process, int]]:
    """Node ``node`` on Redis ``url`` as a subprocess: yields it and its bound port."""
    return open_server_process("tests.owner_app", url, node, str(port))


class RelayedClient(NamedTuple):
    """What `open_relayed_client` opens."""

    owner: trio.Process
    """Node ``a``'s process, the room's owner."""
    port: int
    """Node ``b``'s port."""
    client: RawClient
    """The client of node ``b``, relayed to ``a``."""
    session: dict[str, Any]
    """Its first ``$session`` frame."""


@asynccontextmanager
async def open_relayed_client(url: str, query: str) -> AsyncGenerator[RelayedClient]:
    """Node ``a`` as a subprocess owning room ``game`` (a client of its own holds it),
    node ``b`` in this process, both on the Redis at ``url``, and a client of ``b`` in
    room ``game`` with ``query``: relayed to ``a``, its ``$session`` frame and ``a``'s
    welcome read."""
    game = "/rooms/game/websocket"
    async with (
        open_owner_node(url, "a") as (process_a, port_a),
        serve_owner_rooms(url, "b") as (_, port_b),
        open_raw(port_a, game) as owner,
        open_raw(port_b, f"{game}?{query}") as client,
    ):
        assert orjson.loads(await owner.receive_text())["node"] == "a"
        session = orjson.loads(await client.receive_text())["$session"]
        assert orjson.loads(await client.receive_text())["node"] == "a"
        yield RelayedClient(process_a, port_b, client, session)
