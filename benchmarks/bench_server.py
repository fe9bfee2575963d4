"""trio_rooms server for the shared rooms benchmark (bench/README.md, "The protocol").

    python -m benchmarks.bench_server --port 8000 [--transport hypercorn] [--redis URL]

With ``--redis``, the node joins the others on that Redis through `RedisBackplane` (see
``benchmarks/cluster_bench.py``); with ``--cluster``, through `RedisCluster` and
`RedisStorage` instead: one owner per room, the other nodes' clients relayed to it. With
``--sqlite PATH``, the rooms store in a SQLite file (``synchronous="FULL"``) and every
ping first does one ``room.storage.put`` (its pong leaves once that write is durable):
s3 then measures durable writes per second. With ``--replay PATH``, the rooms store in a
SQLite file and keep a replay log (`trio_rooms.ReplayLimits` defaults) from their start,
as a room with a resumable session does: every broadcast is logged and leaves once its
entry is durable. The load generator's clients never ask to resume, so the log is
started by the room itself. With ``--tagged``, sessions are tagged ``a`` and ``b`` in
turn and each chat goes out as two tagged broadcasts, one per tag: every client still
gets every chat (the load generator's count), through the tag index instead of the room.

``{"type":"chat","text":...}`` is broadcast to the whole room, sender included, as
``{"type":"chat","text":...,"sender":<session id>}``; ``{"type":"ping","t":<number>}``
gets ``{"type":"pong","t":<same>}``; anything else is ignored and the session stays open.
"""

from __future__ import annotations

import argparse
from typing import ClassVar, assert_never

import attrs
import trio

import trio_rooms
from trio_rooms._core.room import room_runner_of

from .turn_trace import TurnTrace


@attrs.frozen
class SendChat(trio_rooms.Message):
    tag = "chat"
    text: str


@attrs.frozen
class Ping(trio_rooms.Message):
    tag = "ping"
    t: float


@attrs.frozen
class Chat(trio_rooms.Message):
    tag = "chat"
    text: str
    sender: str


@attrs.frozen
class Pong(trio_rooms.Message):
    tag = "pong"
    t: float


ClientMsg = SendChat | Ping
ServerMsg = Chat | Pong


class BenchSession(trio_rooms.Session[None, ServerMsg, ClientMsg, "BenchRoom"]):
    async def create_data(self, request: trio_rooms.ConnectRequest) -> None:
        return None

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case SendChat(text=text):
                if self.room.trace is not None:
                    self.room.trace.chat()
                chat = Chat(text=text, sender=self.id)
                if self.room.tagged:
                    self.broadcast(chat, tags=("a",))
                    self.broadcast(chat, tags=("b",))
                else:
                    self.broadcast(chat)
            case Ping(t=t):
                if self.room.put_pings:
                    await self.room.storage.put(f"t:{self.id}", t)
                self.send(Pong(t=t))
            case _:
                assert_never(message)

    async def on_connect(self) -> None:
        room = self.room
        if room.tagged:
            room.joined += 1
            self.tags.add("ab"[room.joined % 2])  # half the room each

    async def on_invalid(self, error: trio_rooms.DecodeError) -> None:
        pass  # the benchmark protocol ignores invalid input silently


class BenchRoom(trio_rooms.Room[BenchSession]):
    put_pings: ClassVar[bool] = False
    #: ``--tagged``: half the sessions tagged ``a``, half ``b``; chats go out per tag.
    tagged: ClassVar[bool] = False
    #: ``--trace FILE``: the run loop's turns and the GC's pauses, written at exit.
    trace: ClassVar[TurnTrace | None] = None

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.joined = 0


class PutBenchRoom(BenchRoom):
    put_pings = True


class ReplayBenchRoom(BenchRoom):
    async def on_start(self) -> None:
        # What admitting a resumable session does first; no public API asks for it.
        room_runner_of(self).log.activate()


async def serve(
    port: int,
    transport: str,
    redis: str | None = None,
    sqlite: str | None = None,
    check_outbound: bool = True,
    replay: str | None = None,
    tagged: bool = False,
    cluster: str | None = None,
    park_after: float | None = 10.0,
    trace_path: str | None = None,
) -> None:
    # The peers have no rate limit, no invalid-frame limit and no connection caps:
    # neither has this server,
    # or s3 (each client echoes as fast as it can) and s4 (thousands of connections
    # from one address) would measure the limits.
    config = trio_rooms.RoomsConfig(
        outbound_max_messages=1024,
        rate_limit=None,
        max_invalid_in_a_row=1_000_000,
        max_connections=1_000_000,
        max_connections_per_address=1_000_000,
        check_outbound=check_outbound,
        park_after=park_after,
    )
    room: type[BenchRoom] = BenchRoom
    if sqlite is not None:
        room = PutBenchRoom
    elif replay is not None:
        room, sqlite = ReplayBenchRoom, replay
    BenchRoom.tagged = tagged
    storage: trio_rooms.Storage | None = (
        None if sqlite is None else trio_rooms.SqliteStorage(sqlite)
    )
    if cluster is not None:
        from trio_rooms.storage.redis import RedisStorage  # an optional extra

        storage = RedisStorage(cluster)
    async with (
        trio.open_nursery() as nursery,
        trio_rooms.open_rooms(
            room,
            config=config,
            storage=storage,
            backplane=_backplane(redis),
            cluster=_cluster(cluster),
        ) as rooms,
    ):
        if trace_path is not None:
            BenchRoom.trace = TurnTrace(lambda: rooms.statistics().parks)
            trio.lowlevel.add_instrument(BenchRoom.trace)
        try:
            await _serve_on(rooms, transport, port, nursery, config)
        finally:
            if BenchRoom.trace is not None and trace_path is not None:
                BenchRoom.trace.write(trace_path)


async def _serve_on(
    rooms: trio_rooms.Rooms[BenchRoom],
    transport: str,
    port: int,
    nursery: trio.Nursery,
    config: trio_rooms.RoomsConfig,
) -> None:
    if transport == "embedded":
        await trio_rooms.serve_websocket(rooms, "127.0.0.1", port)
    else:  # hypercorn's trio worker, as `hypercorn --worker-class trio` runs it
        import hypercorn.trio  # only here: the embedded server's heap stays without it

        hypercorn_config = trio_rooms.hypercorn_config(config, f"127.0.0.1:{port}")
        hypercorn_config.backlog = 1024  # as the hypercorn_trio peer
        hypercorn_config.loglevel = "WARNING"
        app = trio_rooms.bind_asgi(rooms)
        await nursery.start(hypercorn.trio.serve, app, hypercorn_config)
        await trio.sleep_forever()


def _backplane(redis: str | None) -> trio_rooms.Backplane | None:
    if redis is None:
        return None
    from trio_rooms.backplane.redis import RedisBackplane  # an optional extra

    return RedisBackplane(redis)


def _cluster(url: str | None) -> trio_rooms.Cluster | None:
    if url is None:
        return None
    from trio_rooms.backplane.redis import RedisCluster  # an optional extra

    return RedisCluster(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=["embedded", "hypercorn"], default="embedded")
    parser.add_argument("--redis", metavar="URL", help="share rooms with other nodes on Redis")
    parser.add_argument("--cluster", metavar="URL", help="one owner per room, on Redis")
    parser.add_argument("--sqlite", metavar="PATH", help="store in SQLite; put on every ping")
    parser.add_argument("--replay", metavar="PATH", help="store in SQLite; log for replay")
    parser.add_argument(
        "--no-check-outbound", action="store_true", help="RoomsConfig(check_outbound=False)"
    )
    parser.add_argument(
        "--tagged", action="store_true", help="tag half the room a, half b; broadcast per tag"
    )
    parser.add_argument(
        "--park-after",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="RoomsConfig(park_after=...) (default 10, the library's; 0: never park)",
    )
    parser.add_argument(
        "--trace",
        metavar="FILE",
        help="write the longest run-loop turns, parks per turn and GC pauses to FILE at exit",
    )
    args = parser.parse_args()
    port: int = args.port
    transport: str = args.transport
    redis: str | None = args.redis
    sqlite: str | None = args.sqlite
    replay: str | None = args.replay
    park_after: float | None = args.park_after or None
    try:
        trio.run(
            serve,
            port,
            transport,
            redis,
            sqlite,
            not args.no_check_outbound,
            replay,
            args.tagged,
            args.cluster,
            park_after,
            args.trace,
        )
    except* KeyboardInterrupt:  # SIGINT from the bench runner (trio groups it): exit cleanly
        pass


if __name__ == "__main__":
    main()
