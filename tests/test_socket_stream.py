"""The embedded server's stream over a stdlib socket keeps trio's stream semantics."""

from __future__ import annotations

import socket
import struct

import pytest
import trio
import trio.testing

from trio_rooms.transports._socket_stream import SocketStream, socket_of


def _connected_sockets() -> tuple[socket.socket, socket.socket]:
    """Two ends of one TCP connection on 127.0.0.1: the accepted one first."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        accepted, _ = listener.accept()
    return accepted, client


async def _pair() -> tuple[SocketStream, SocketStream]:
    accepted, client = _connected_sockets()
    return SocketStream(accepted), SocketStream(client)


async def _fill(stream: SocketStream) -> None:
    """Send until the socket takes no more (trio's own tests clog a stream this way)."""

    async def sender() -> None:
        while True:
            await stream.send_all(b"x" * 10000)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


async def _clogged_pair() -> tuple[SocketStream, SocketStream]:
    first, second = await _pair()
    for stream in (first, second):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    await _fill(first)
    await _fill(second)
    return first, second


async def test_it_passes_trios_half_closeable_stream_checks() -> None:
    """trio's conformance battery for half-closeable streams passes over real TCP sockets."""
    await trio.testing.check_half_closeable_stream(_pair, _clogged_pair)


async def test_it_sets_trios_socket_options_and_leaves_the_socket_non_blocking() -> None:
    """Like trio's SocketStream: TCP_NODELAY on, and a non-blocking socket the transport reads."""
    server, client = await _pair()
    async with server, client:
        assert server.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        if hasattr(socket, "TCP_NOTSENT_LOWAT"):
            lowat = server.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT)
            assert lowat == 2**14
        assert server.socket.getblocking() is False


async def test_a_peer_reset_is_a_broken_resource_error() -> None:
    """A peer that resets the connection makes the next receive raise BrokenResourceError."""
    accepted, client = _connected_sockets()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST, not FIN
    async with SocketStream(accepted) as stream:
        with pytest.raises(trio.BrokenResourceError):
            await stream.receive_some()


async def test_closing_wakes_a_task_waiting_to_receive_with_closed_resource_error() -> None:
    """aclose from another task ends a waiting receive_some with ClosedResourceError."""
    server, client = await _pair()
    errors: list[type[BaseException]] = []

    async def receive() -> None:
        try:
            await server.receive_some()
        except trio.ClosedResourceError as exc:
            errors.append(type(exc))

    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        await server.aclose()
    assert errors == [trio.ClosedResourceError]
    assert server.socket.fileno() == -1


async def test_a_cancelled_send_sends_nothing() -> None:
    """send_all in a cancelled scope raises Cancelled before any byte leaves."""
    server, client = await _pair()
    async with server, client:
        with trio.CancelScope() as scope:
            scope.cancel()
            await server.send_all(b"lost")
        await server.send_all(b"kept")
        await server.send_eof()
        received = b""
        while data := await client.receive_some():
            received += data
        assert received == b"kept"


async def test_a_large_send_through_small_buffers_arrives_whole() -> None:
    """A send larger than the socket buffers waits for room and arrives whole and in order."""
    server, client = await _pair()
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 16384  # 4 MiB
    received = bytearray()

    async def receive() -> None:
        while data := await client.receive_some(65536):
            received.extend(data)

    async with server, client, trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await server.send_all(payload)
        await server.send_eof()
    assert received == payload


async def _received_after(server: SocketStream, client: SocketStream, then: bytes) -> bytes:
    """What ``client`` receives while ``server`` sends ``then`` and its EOF."""
    received = bytearray()

    async def receive() -> None:
        while data := await client.receive_some(65536):
            received.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await server.send_all(then)
        await server.send_eof()
    return bytes(received)


@pytest.mark.parametrize("keep", [True, False])
async def test_a_send_cancelled_part_way_is_finished_by_the_next_with_keep_unsent(
    keep: bool,
) -> None:
    """With ``keep_unsent``, what a send cancelled part way did not write goes first at the
    next one: the peer gets every byte once, in order. Without, it is gone (trio's
    semantics: a cancelled send leaves the stream in an unknown state)."""
    server, client = await _pair()
    server.keep_unsent = keep
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 16384  # 4 MiB: more than the buffers hold
    async with server, client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.send_all, payload)
            await trio.testing.wait_all_tasks_blocked()  # the socket is full
            nursery.cancel_scope.cancel()
        if not keep:
            assert server.unsent == b""
            return
        assert 0 < len(server.unsent) < len(payload)
        assert await _received_after(server, client, b"next") == payload + b"next"
        assert server.unsent == b""


async def test_with_keep_unsent_a_send_cancelled_before_any_byte_goes_with_the_next() -> None:
    server, client = await _pair()
    server.keep_unsent = True
    async with server, client:
        with trio.CancelScope() as scope:
            scope.cancel()
            await server.send_all(b"kept")
        assert server.unsent == b"kept"
        assert await _received_after(server, client, b" then") == b"kept then"


async def test_receive_some_refuses_a_size_below_one() -> None:
    """receive_some(0) raises ValueError, as trio's streams do."""
    server, client = await _pair()
    async with server, client:
        with pytest.raises(ValueError, match="max_bytes"):
            await server.receive_some(0)


async def test_the_transport_reads_the_socket_of_either_stream_directly() -> None:
    """socket_of gives the socket of this stream and of trio's, and None for another stream."""
    server, client = await _pair()
    left, right = trio.socket.socketpair()
    trio_stream = trio.SocketStream(left)
    memory, _ = trio.testing.memory_stream_pair()
    async with server, client, trio_stream:
        assert socket_of(server) is server.socket
        assert socket_of(trio_stream) is trio_stream.socket
        assert socket_of(memory) is None
    right.close()
