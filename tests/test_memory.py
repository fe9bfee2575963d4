"""What a server keeps after its connections close: nothing of its own.

The resident set stays higher than before a burst of connections (about 27 MiB after
1,000 on CPython 3.11 with glibc): pymalloc arenas that a few long-lived objects keep
from being returned, and glibc heap pages it does not trim. That memory is reused by
the next burst (the figure is flat across rounds). What these tests pin is the part
that is ours: no object of the package, and almost no memory allocated from its
code, outlives the connections.
"""

from __future__ import annotations

import gc
import tracemalloc
import types
from collections import Counter
from collections.abc import AsyncGenerator, Callable

import attrs
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Rooms, RoomsConfig, Session

from .sockets import CLOSE, TEXT, client_frame, close_payload, connect_socket, raw_handshake

CONNECTIONS = 200
ROOMS = 10
#: Allocations made from the package's code still alive after a burst, at most: trio's
#: deadline heap keeps cancelled scopes until it prunes them (up to 1,000 stale entries,
#: each with the scope it keeps alive: measured 52 B + 68 to 112 B per entry, so up to
#: about 300 KiB), and a set or dict keeps the table it grew to (a few KiB). A leaked
#: session alone is about 25 KiB, 200 of them 5 MiB.
RETAINED_BYTES = 384 * 1024
OURS = tracemalloc.Filter(True, f"{trio_rooms.__path__[0]}/*", all_frames=True)


@attrs.frozen
class Joined(Message):
    user_id: str


class BurstSession(Session[None, Joined, Joined]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.broadcast(Joined(user_id=self.id))

    async def on_message(self, message: Joined) -> None:
        pass


class BurstRoom(Room[BurstSession]):
    pass


def _package_objects() -> Counter[str]:
    """Live objects whose class the package defines, by class name."""
    gc.collect()
    found: Counter[str] = Counter()
    objects: list[object] = gc.get_objects()
    for obj in objects:
        cls = type(obj)
        module: object = vars(cls).get("__module__")  # a C type's may be a descriptor
        if isinstance(module, str) and module.startswith("trio_rooms"):
            found[cls.__qualname__] += 1
    return found


def _traced_from_package() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces([OURS])
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.fixture
async def rooms() -> AsyncGenerator[Rooms[BurstRoom]]:
    # The rooms stay between bursts (30 s idle): what is counted scales with connections.
    config = RoomsConfig(max_connections_per_address=CONNECTIONS)
    async with trio_rooms.open_rooms(BurstRoom, config=config) as rooms:
        yield rooms


async def _burst(port: int, rooms: Rooms[BurstRoom], at_peak: Callable[[], None]) -> None:
    """CONNECTIONS clients join ROOMS rooms, all at once; then every one of them leaves."""
    joined = 0
    all_in = trio.Event()
    leave = trio.Event()

    async def client(index: int) -> None:
        nonlocal joined
        stream = await connect_socket(port)
        async with stream:
            peer = await raw_handshake(stream, f"/rooms/burst-{index % ROOMS}/websocket")
            frame = await peer.receive_frame()
            assert frame is not None
            assert frame.opcode == TEXT, frame  # admitted: its own join
            joined += 1
            if joined == CONNECTIONS:
                all_in.set()
            await leave.wait()
            await peer.send(client_frame(CLOSE, close_payload(1000)))
            assert await peer.close_code() == 1000

    async with trio.open_nursery() as nursery:
        for index in range(CONNECTIONS):
            nursery.start_soon(client, index)
        await all_in.wait()
        assert rooms.statistics().sessions == CONNECTIONS
        at_peak()
        leave.set()
    with trio.fail_after(10):  # the server finishes the closes the clients started
        await rooms.wait_statistics(lambda stats: stats.sessions == 0 and stats.connections == 0)
    await trio.testing.wait_all_tasks_blocked()  # every close has persisted what it does


@pytest.mark.embedded_only("hypercorn keeps closed connections until its keep_alive_timeout")
async def test_no_object_of_the_package_outlives_its_connections(
    nursery: trio.Nursery, rooms: Rooms[BurstRoom], transport: str
) -> None:
    """After 200 connections in 10 rooms open and close, the package's objects (rooms,
    sessions, records, queues, connections) are back to what they were before."""
    port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    await _burst(port, rooms, lambda: None)  # warm up: codecs, route tables, trio's sets
    before = _package_objects()
    peak: Counter[str] = Counter()

    def count_at_peak() -> None:
        peak.update(_package_objects())

    await _burst(port, rooms, count_at_peak)
    assert peak["SessionRunner"] >= CONNECTIONS  # the count sees what a session keeps
    assert _package_objects() - before == Counter()
    nursery.cancel_scope.cancel()


def _tracebacks() -> int:
    return sum(isinstance(obj, types.TracebackType) for obj in gc.get_objects())


@pytest.mark.embedded_only("the session's tasks are the same behind hypercorn")
async def test_an_idle_session_keeps_no_exception_alive(
    nursery: trio.Nursery, rooms: Rooms[BurstRoom], transport: str
) -> None:
    """200 idle sessions hold no traceback (a wait inside `except` keeps one, and its frames)."""
    port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    await _burst(port, rooms, lambda: None)
    gc.collect()
    before = _tracebacks()
    at_peak: list[int] = []
    await _burst(port, rooms, lambda: at_peak.append(_tracebacks()))
    assert at_peak[0] - before < CONNECTIONS // 10
    nursery.cancel_scope.cancel()


@pytest.mark.slow
@pytest.mark.embedded_only("hypercorn keeps closed connections until its keep_alive_timeout")
async def test_memory_allocated_by_the_package_is_given_back_after_closes(
    nursery: trio.Nursery, rooms: Rooms[BurstRoom], transport: str
) -> None:
    """What the package's code allocated for 200 connections is freed once they closed,
    burst after burst, but for a few grown tables (tracemalloc)."""
    port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    await _burst(port, rooms, lambda: None)
    tracemalloc.start(12)
    try:
        baseline = _traced_from_package()
        peaks: list[int] = []
        retained: list[int] = []
        for _ in range(2):
            await _burst(port, rooms, lambda: peaks.append(_traced_from_package() - baseline))
            gc.collect()
            retained.append(_traced_from_package() - baseline)
    finally:
        tracemalloc.stop()
    print(f"peak {peaks}, retained {retained} bytes")
    assert min(peaks) > CONNECTIONS * 4096  # the connections were measured while open
    assert max(retained) < RETAINED_BYTES
    nursery.cancel_scope.cancel()
