"""Presence churn: joins and leaves per second that one room sustains with 1,000 members.

    python -m benchmarks.presence_bench [--members 1000] [--churners 20] [--seconds 5]
        [--nodes 1|2] [--redis redis://...]

The server (one node, or two on one Redis, started here on a free port unless
``--redis`` is given) runs in this process; the clients run in a child process
(``--drive``), so that their cost is not the server's. Every member connects with
``?key=...&watch``: it joins presence in ``on_connect`` and subscribes, so each change
reaches every member. Members read their sockets and discard the bytes.
``--churners`` more clients loop ``Join``, then ``Leave``, each waiting for the room's
``Done``. With two nodes members and churners are split over them.

Reported: changes acknowledged per second, the diff frames per second one member on the
last node received (what every member got: fewer than the changes when a turn's
changes are merged), and the server's CPU seconds per change.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import assert_never

import attrs
import orjson
import trio
import trio_websocket

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session
from trio_rooms.backplane.redis import RedisBackplane


@attrs.frozen
class Device:
    name: str


@attrs.frozen
class Join(Message):
    key: str


@attrs.frozen
class Leave(Message):
    pass


@attrs.frozen
class Done(Message):
    pass


class ChurnSession(Session[None, Done, Join | Leave, "ChurnRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        key = self.request.query.get("key")
        if key is not None:
            self.join_presence(key, Device("web"))
        if "watch" in self.request.query:
            self.subscribe_presence()

    async def on_message(self, message: Join | Leave) -> None:
        match message:
            case Join(key=key):
                self.join_presence(key, Device("bench"))
            case Leave():
                self.leave_presence()
            case _:
                assert_never(message)
        self.send(Done())


class ChurnRoom(Room[ChurnSession]):
    presence = trio_rooms.Presence(Device)


_CONFIG = trio_rooms.RoomsConfig(
    rate_limit=None, max_connections_per_address=100_000, outbound_max_messages=4096
)


async def _node(url: str | None, *, task_status: trio.TaskStatus[int]) -> None:
    backplane = RedisBackplane(url) if url is not None else None
    async with (
        trio_rooms.open_rooms(ChurnRoom, config=_CONFIG, backplane=backplane) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        task_status.started(port)


class _Ready:
    """Counts the members whose state frame came: they are in the room."""

    def __init__(self, members: int) -> None:
        self.missing = members
        self.all = trio.Event()

    def one(self) -> None:
        self.missing -= 1
        if self.missing == 0:
            self.all.set()


async def _member(port: int, key: str, ready: _Ready, counted: list[int] | None) -> None:
    """A raw member: upgrade, then read and drop bytes (counting diffs if asked)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    nonce = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        (
            f"GET /rooms/bench/websocket?key={key}&watch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buffer = b""
    while b'"state"' not in buffer:  # the 101, then the state frame: admitted
        buffer += await stream.receive_some(65536)
    ready.one()
    while data := await stream.receive_some(65536):
        if counted is not None:
            counted[0] += data.count(b'"joins"')


async def _churner(port: int, key: str, done: list[int]) -> None:
    url = "/rooms/bench/websocket"
    async with trio_websocket.open_websocket("127.0.0.1", port, url, use_ssl=False) as ws:
        while True:
            for message in ({"type": "join", "key": key}, {"type": "leave"}):
                await ws.send_message(orjson.dumps(message).decode())
                await ws.get_message()
                done[0] += 1


@asynccontextmanager
async def _redis(url: str | None) -> AsyncGenerator[str]:
    if url is not None:
        yield url
        return
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("--nodes 2 needs redis-server (or --redis URL)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with tempfile.TemporaryDirectory() as directory:
        process = await trio.lowlevel.open_process(
            [executable, *options, "--dir", directory], stdout=subprocess.DEVNULL
        )
        try:
            for _ in range(100):
                try:
                    await (await trio.open_tcp_stream("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await trio.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            await process.wait()


async def drive(ports: list[int], members: int, churners: int, seconds: float) -> None:
    """The clients (the child process): members, then churners; the figures on stdout.

    Prints ``measuring`` when the window opens, then one JSON line of what it counted.
    """
    nodes = len(ports)
    counted = [0]
    ready = _Ready(members)
    async with trio.open_nursery() as clients:
        for n in range(members):
            watched = counted if n == members - 1 else None
            clients.start_soon(_member, ports[n % nodes], f"member-{n}", ready, watched)
        with trio.fail_after(120):
            await ready.all.wait()
        done = [0]
        for n in range(churners):
            clients.start_soon(_churner, ports[n % nodes], f"churner-{n}", done)
        await trio.sleep(1)  # warm up
        done[0] = counted[0] = 0
        print("measuring", flush=True)
        started = time.perf_counter()
        await trio.sleep(seconds)
        elapsed = time.perf_counter() - started
        print(orjson.dumps({"acked": done[0], "diffs": counted[0], "elapsed": elapsed}).decode())
        clients.cancel_scope.cancel()


async def run(members: int, churners: int, seconds: float, nodes: int, url: str | None) -> None:
    async with _redis(url) if nodes == 2 else _none() as redis_url, trio.open_nursery() as nursery:
        ports: list[int] = [await nursery.start(_node, redis_url) for _ in range(nodes)]
        command = [
            sys.executable,
            "-m",
            "benchmarks.presence_bench",
            "--drive",
            ",".join(map(str, ports)),
            "--members",
            str(members),
            "--churners",
            str(churners),
            "--seconds",
            str(seconds),
        ]
        child = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None
            lines = _lines(child.stdout)
            assert await anext(lines) == "measuring"
            cpu = time.process_time()
            figures = orjson.loads(await anext(lines))
            cpu = time.process_time() - cpu
        finally:
            await child.wait()
        nursery.cancel_scope.cancel()
    elapsed = figures["elapsed"]
    acked, seen = figures["acked"], figures["diffs"]
    print(
        f"nodes={nodes} members={members} churners={churners}: "
        f"{acked / elapsed:,.0f} changes/s acknowledged, "
        f"{seen / elapsed:,.0f} diff frames/s reached a member (each to {members} "
        f"subscribers), {cpu / max(acked, 1) * 1e6:,.0f} us server CPU per change"
    )


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncGenerator[str]:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            data = await stream.receive_some()
            if not data:
                raise SystemExit(f"the clients' process ended: {buffer!r}")
            buffer += data
        line, _, buffer = buffer.partition(b"\n")
        yield line.decode()


@asynccontextmanager
async def _none() -> AsyncGenerator[None]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--churners", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--drive", metavar="PORTS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        ports = [int(port) for port in args.drive.split(",")]
        trio.run(drive, ports, args.members, args.churners, args.seconds)
        return
    trio.run(run, args.members, args.churners, args.seconds, args.nodes, args.redis)


if __name__ == "__main__":
    main()
