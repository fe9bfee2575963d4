"""Request/response round trips per second against the s3-style echo, in one process.

    python -m benchmarks.request_bench [--seconds 3] [--format json|msgpack]

One room, one client on 127.0.0.1. Each mode runs for ``--seconds``, one round trip
in flight at a time, then 32 at once:

- ``echo``: ``{"type":"ping","t":...}`` answered by ``send(Pong)`` from ``on_message``
  (s3's echo), over a raw trio-websocket client;
- ``request (raw)``: the same ping as a request with ``"$rid"``, answered by a
  ``@replies`` handler, over the same raw client;
- ``request (RoomClient)``: ``await client.request(PingReq(t))`` through the typed client.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Awaitable, Callable
from typing import assert_never

import attrs
import msgpack
import orjson
import trio
import trio_websocket

import trio_rooms
from trio_rooms import ConnectRequest, Message, Request, Room, Session, replies
from trio_rooms.client import RoomClient, open_room_client


@attrs.frozen
class Pong(Message):
    t: float


@attrs.frozen
class Ping(Message):
    t: float


@attrs.frozen
class PingReq(Request[Pong]):
    t: float


class BenchSession(Session[None, Pong, Ping | PingReq]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    @replies(PingReq)
    async def ping(self, request: PingReq) -> Pong:
        return Pong(request.t)

    async def on_message(self, message: Ping | PingReq) -> None:
        match message:
            case Ping(t=t):
                self.send(Pong(t))
            case PingReq():
                pass
            case _:
                assert_never(message)


class BenchRoom(Room[BenchSession]):
    pass


async def _rate(seconds: float, parallel: int, round_trip: Callable[[], Awaitable[None]]) -> float:
    done = 0
    deadline = trio.current_time() + seconds

    async def worker() -> None:
        nonlocal done
        while trio.current_time() < deadline:
            await round_trip()
            done += 1

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(parallel):
            nursery.start_soon(worker)
    return done / (trio.current_time() - start)


async def _raw(port: int, wire: trio_rooms.WireFormat, parallel: int, seconds: float) -> None:
    """Echo, then raw requests, over one trio-websocket client."""
    query = "?format=msgpack" if wire == "msgpack" else ""
    dumps: Callable[[object], str | bytes] = (
        (lambda o: orjson.dumps(o).decode()) if wire == "json" else msgpack.packb
    )
    keys = itertools.count()
    # One reader hands each reply to whoever waits for it (by "t" for pongs, "$rid" else).
    waiting: dict[object, trio.Event] = {}
    url = f"ws://127.0.0.1:{port}/rooms/raw{parallel}/websocket{query}"
    async with trio_websocket.open_websocket_url(url) as ws:

        async def read() -> None:
            while True:
                frame = await ws.get_message()
                binary = isinstance(frame, bytes)
                content = msgpack.unpackb(frame) if binary else orjson.loads(frame)
                waiting.pop(content["$rid"] if "$rid" in content else content["t"]).set()

        async def echo() -> None:
            key = float(next(keys))
            waiting[key] = event = trio.Event()
            await ws.send_message(dumps({"type": "ping", "t": key}))
            await event.wait()

        async def raw_request() -> None:
            rid = next(keys)
            waiting[rid] = event = trio.Event()
            await ws.send_message(dumps({"type": "pingReq", "t": 0.0, "$rid": rid}))
            await event.wait()

        async with trio.open_nursery() as reader:
            reader.start_soon(read)
            for name, fn in (("echo", echo), ("request (raw)", raw_request)):
                rate = await _rate(seconds, parallel, fn)
                print(f"{wire} {parallel:>2} in flight  {name:<22} {rate:>9,.0f} /s")
            reader.cancel_scope.cancel()


async def main(seconds: float, wire: trio_rooms.WireFormat) -> None:
    config = trio_rooms.RoomsConfig(rate_limit=None)  # s3 measures the server, not the limit
    async with (
        trio_rooms.open_rooms(BenchRoom, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        for parallel in (1, 32):
            await _raw(port, wire, parallel, seconds)
            url = f"ws://127.0.0.1:{port}/rooms/typed{parallel}/websocket"
            async with open_room_client(url, BenchSession, format=wire) as client:

                async def typed(client: RoomClient[Pong, Ping | PingReq] = client) -> None:
                    await client.request(PingReq(0.0), timeout=10)

                rate = await _rate(seconds, parallel, typed)
                print(
                    f"{wire} {parallel:>2} in flight  {'request (RoomClient)':<22} {rate:>9,.0f} /s"
                )
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--format", choices=("json", "msgpack"), default="json")
    args = parser.parse_args()
    trio.run(main, args.seconds, args.format)
