"""`Watching`: connections of the embedded server read in one task's call backs.

Real sockets (socket pairs): a watched `StreamConnection` is read without a task
waiting on its socket, whatever way its client's frames are cut, until the watch ends:
by its watcher, by the connection's close, or by the server's shutdown.
"""

from __future__ import annotations

import os
import socket as stdlib_socket
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

import trio

from trio_rooms import RoomsConfig
from trio_rooms._core.connection import ConnectionEnded, Watchable
from trio_rooms._core.outbound import PONG, OutboundQueue
from trio_rooms.transports._socket_stream import SocketStream
from trio_rooms.transports._stream_connection import StreamConnection
from trio_rooms.transports._watching import Watching

from .sockets import BINARY, CONTINUATION, PING, TEXT, client_frame

PATIENCE = 10.0


@asynccontextmanager
async def _watching() -> AsyncGenerator[Watching]:
    watching = Watching()
    async with trio.open_nursery() as nursery:
        await nursery.start(watching.run)
        yield watching
        nursery.cancel_scope.cancel()


class _Peer:
    """A watched connection, its client's end of the socket pair, and what it read."""

    def __init__(self, watching: Watching | None, server: stdlib_socket.socket) -> None:
        self.server = server
        self.connection = StreamConnection(SocketStream(server), RoomsConfig())
        self.connection.watching = watching
        self.outbound = OutboundQueue(8, 1024, 1.0)
        self.connection.attach(self.outbound)
        self.read: Callable[[], str | bytes] | None = None
        self.messages: list[str | bytes] = []
        self.ended: list[tuple[int, str]] = []
        #: The tasks the call backs ran in.
        self.tasks: set[str] = set()
        self._changed = trio.Event()

    def watch(self) -> bool:
        self.read = self.connection.watch(self.readable)
        return self.read is not None

    def readable(self) -> None:
        """Read what came, as `_Pump._readable` does; at the end, unwatch."""
        self.tasks.add(trio.lowlevel.current_task().name)
        assert self.read is not None
        while True:
            try:
                self.messages.append(self.read())
            except trio.WouldBlock:
                break
            except ConnectionEnded as ended:
                self.ended.append((ended.code, ended.reason))
                self.connection.unwatch()
                break
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` messages were read."""
        with trio.fail_after(PATIENCE):
            while len(self.messages) < count:
                await self._changed.wait()
                self._changed = trio.Event()


def _pair(watching: Watching | None) -> tuple[_Peer, trio.socket.SocketType]:
    server, client = stdlib_socket.socketpair()
    return _Peer(watching, server), trio.socket.from_stdlib_socket(client)


async def test_a_watched_connection_is_read_in_the_watchers_task_in_order() -> None:
    """Two frames in one write, one cut in two writes, a fragmented message with a ping
    between its fragments, and a binary one: each message once and in order, read by
    call backs in the watcher's task, the ping answered."""
    async with _watching() as watching:
        peer, client = _pair(watching)
        assert peer.watch()
        assert isinstance(peer.connection, Watchable)
        assert len(watching) == 1
        cut = client_frame(TEXT, b"three")
        await client.send(client_frame(TEXT, b"one") + client_frame(TEXT, b"two") + cut[:4])
        await peer.wait_for(2)
        await client.send(cut[4:])
        await peer.wait_for(3)
        fragmented = client_frame(TEXT, b"fo", fin=False) + client_frame(PING, b"p")
        await client.send(fragmented + client_frame(CONTINUATION, b"ur"))
        await client.send(client_frame(BINARY, b"five"))
        await peer.wait_for(5)
        assert peer.messages == ["one", "two", "three", "four", b"five"]
        assert peer.tasks == {"trio_rooms.transports._watching.Watching.run"}
        (pong,) = await peer.outbound.get_batch(1024)
        assert (pong.opcode, pong.payload) == (PONG, b"p")
        peer.connection.unwatch()
        assert len(watching) == 0
        for end in (client, peer.server):
            end.close()


async def test_what_came_before_the_watch_is_read_by_its_first_read() -> None:
    """Input read before the watch began (with the handshake) is the first read's: the
    socket will not say it is readable for it."""
    async with _watching() as watching:
        server, client = stdlib_socket.socketpair()
        connection = StreamConnection(
            SocketStream(server), RoomsConfig(), received=client_frame(TEXT, b"early")
        )
        connection.watching = watching
        read = connection.watch(lambda: None)
        assert read is not None
        assert read() == "early"
        try:
            read()
        except trio.WouldBlock:
            pass
        else:
            raise AssertionError("a read with nothing there did not raise WouldBlock")
        connection.unwatch()
        for end in (client, server):
            end.close()


async def test_a_connection_closed_under_its_watch_is_called_back_with_its_end() -> None:
    """The keepalive drops a watched connection: its call back reads 1006, "keepalive
    timeout", as a reader waiting on the socket would, and it is watched no more."""
    async with _watching() as watching:
        peer, client = _pair(watching)
        assert peer.watch()
        await peer.connection.keepalive_expire()
        assert peer.ended == [(1006, "keepalive timeout")]
        assert len(watching) == 0
        client.close()  # (the keepalive closed the server's end)


async def test_a_descriptor_number_reused_while_watched_stays_the_new_connections() -> None:
    """A socket closed while watched frees its number: the next connection given that
    number is watched and called back, and the old connection's unwatch leaves it so."""
    async with _watching() as watching:
        old, old_client = _pair(watching)
        assert old.watch()
        fd = old.server.fileno()
        old.server.close()  # closed behind its watch: the kernel drops it from the set
        server, client = stdlib_socket.socketpair()
        if server.fileno() != fd:
            os.dup2(server.fileno(), fd)
            server.close()
            server = stdlib_socket.socket(fileno=fd)
        new = _Peer(watching, server)
        assert new.watch()
        old.connection.unwatch()
        assert len(watching) == 1
        client.sendall(client_frame(TEXT, b"mine"))
        await new.wait_for(1)
        assert new.messages == ["mine"]
        assert old.messages == []
        new.connection.unwatch()
        for end in (client, old_client, new.server):
            end.close()


async def test_nothing_is_watched_before_the_watcher_runs_or_after_it_stopped() -> None:
    """A watch asked of a server that is not watching (not yet, or no more) is refused:
    the connection is read by its own task then."""
    watching = Watching()
    peer, client = _pair(watching)
    assert not peer.watch()
    async with _watching() as running:
        pass
    late, late_client = _pair(running)
    assert not late.watch()
    unwatched, unwatched_client = _pair(None)
    assert not unwatched.watch()
    for end in (client, late_client, unwatched_client):
        end.close()
    for each in (peer, late, unwatched):
        each.server.close()
