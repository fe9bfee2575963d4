"""What an idle connection costs the embedded server: objects the cyclic GC must walk.

Every full collection walks every tracked object, and collections come as the heap
grows: a server opening thousands of connections spends its handshake CPU there. The
bound below is what the server held when it was set, plus a little room.
"""

from __future__ import annotations

import gc
import socket
from collections.abc import Callable

import attrs
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, RoomsConfig, RoomsStatistics, Session

from .sockets import handshake_request

CONNECTIONS = 100
#: GC-tracked objects the server holds per idle connection, at most (48 when set: the
#: connection's own stream over its stdlib socket, the session's run awaited in the
#: transport's frame, the handler's read inline, the reader's and writer's scopes made
#: when needed; 54 before: the socket read in the connection's own receive, no exception
#: caught in a coroutine that stays; 55 before: its reader and writer tasks started only
#: when needed, none for an idle session; 78 before: no record stored for a session that
#: cannot resume, no accept wrapper; 80 before: no closure, bound method or ``with``
#: block kept per wait, codec or counted slot, the writer unshielded until its first
#: frame, the parser, tag set and rate bucket made at first use, three coroutines less;
#: 106 before, the session run in its transport's task and its inbox no memory channel;
#: 135 with a task of its own, 161 with wsproto, the stream layers and the transport's
#: closures). Most of it is trio's: the transport's task with its coroutines, context,
#: cancel scopes and the session's nursery.
MAX_TRACKED_PER_CONNECTION = 50


@attrs.frozen
class Noted(Message):
    text: str


class IdleSession(Session[None, Noted, Noted]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Noted) -> None:
        pass


class IdleRoom(Room[IdleSession]):
    pass


def _open(port: int) -> socket.socket:
    """A blocking client socket through its handshake: one tracked object of its own."""
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(handshake_request("/rooms/idle/websocket"))
    response = b""
    while b"\r\n\r\n" not in response:
        response += client.recv(4096)
    assert response.startswith(b"HTTP/1.1 101 "), response
    return client


def _tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


async def _tracked_per_connection(
    nursery: trio.Nursery, config: RoomsConfig, settled: Callable[[RoomsStatistics, int], bool]
) -> float:
    """The tracked objects each of ``CONNECTIONS`` more connections adds, once ``settled``."""
    async with trio_rooms.open_rooms(IdleRoom, config=config) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        # Warm up: the room, codecs and trio's tables exist before the count starts.
        clients = [await trio.to_thread.run_sync(_open, port) for _ in range(5)]
        await rooms.wait_statistics(lambda stats: settled(stats, 5))
        await trio.testing.wait_all_tasks_blocked()
        before = _tracked()
        for _ in range(CONNECTIONS):
            clients.append(await trio.to_thread.run_sync(_open, port))
        await rooms.wait_statistics(lambda stats: settled(stats, 5 + CONNECTIONS))
        await trio.testing.wait_all_tasks_blocked()
        # Less the clients' own sockets (and the list holding them).
        per_connection = (_tracked() - before - CONNECTIONS) / CONNECTIONS
        for client in clients:
            client.close()
        nursery.cancel_scope.cancel()
    return per_connection


async def test_an_idle_connection_holds_at_most_the_pinned_number_of_tracked_objects(
    nursery: trio.Nursery,
) -> None:
    """100 idle connections add at most 50 GC-tracked objects each to the server."""
    config = RoomsConfig(max_connections_per_address=2 * CONNECTIONS)
    per_connection = await _tracked_per_connection(
        nursery, config, lambda stats, count: stats.sessions == count
    )
    assert per_connection <= MAX_TRACKED_PER_CONNECTION, per_connection


#: GC-tracked objects per parked connection (``park_after``), at most (16 when set: its
#: socket and stream, the Session with its runner, record, tags, queue and request,
#: the handler's cancel scope, the parked handles and three bound methods; no task,
#: coroutine, nursery or read buffer; 20 with trio's stream and socket objects and the
#: reader's and writer's scopes, 21 when first set).
MAX_TRACKED_PER_PARKED_CONNECTION = 18


async def test_a_parked_connection_holds_at_most_the_pinned_number_of_tracked_objects(
    nursery: trio.Nursery,
) -> None:
    """100 parked connections add at most 18 GC-tracked objects each to the server."""
    config = RoomsConfig(max_connections_per_address=2 * CONNECTIONS, park_after=0.02)
    per_connection = await _tracked_per_connection(
        nursery, config, lambda stats, count: stats.parked_sessions == count
    )
    assert per_connection <= MAX_TRACKED_PER_PARKED_CONNECTION, per_connection
