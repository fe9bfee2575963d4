"""A client that breaks the frame stream is answered with a close frame and the end of TCP.

RFC 6455 7.1.7, "Fail the WebSocket Connection": a frame that announces a message over
``max_message_size``, a broken frame or text that is not UTF-8 leaves nothing the
server can wait for (the client may be in the middle of a huge payload the server will
not read), so the server sends its close frame and closes the TCP connection at once,
not after ``close_timeout``. Each test's client sends nothing after its bad frame.
"""

from __future__ import annotations

import contextlib

import pytest
import trio

from trio_rooms import RoomsConfig

from .sockets import CLOSE, TEXT, RawClient, ServerFrame, client_frame, close_payload, open_raw

#: Far longer than the guard of each test: a server that waits for the client fails it.
CLOSE_TIMEOUT = 60.0
GUARD = 5.0
LIMIT = 64 * 1024


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(close_timeout=CLOSE_TIMEOUT, max_message_size=LIMIT)


async def _close_then_eof(client: RawClient) -> int:
    """The code of the server's last frame, a close frame, read until the TCP end."""
    with trio.fail_after(GUARD):
        frames = await client.receive_until_eof()
    assert frames, "the connection ended without a close frame"
    assert frames[-1].opcode == CLOSE, frames
    return frames[-1].close_code


@pytest.mark.embedded_only("raw frames")
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        # A header announcing a message over the limit, and the start of its payload.
        (client_frame(TEXT, b"x" * 1000, length=LIMIT * 16)[: 14 + 1000], 1009),
        (client_frame(TEXT, b"hello", key=None), 1002),  # unmasked
        (client_frame(TEXT, b"hello", rsv=4), 1002),  # a reserved bit without an extension
        (client_frame(0x3, b"hello"), 1002),  # an unknown opcode
        (client_frame(TEXT, b"\xff\xfe"), 1007),  # not UTF-8
        # A new message before the fragmented one ended.
        (client_frame(TEXT, b"one", fin=False) + client_frame(TEXT, b"two"), 1002),
    ],
    ids=["oversized", "unmasked", "reserved-bit", "unknown-opcode", "not-utf8", "interleaved"],
)
async def test_a_broken_frame_stream_is_closed_at_once(port: int, frame: bytes, code: int) -> None:
    async with open_raw(port, "/rooms/lobby/websocket") as client:
        assert (await client.receive_frame()) is not None  # its own join: admitted
        await client.send(frame)
        assert await _close_then_eof(client) == code


@pytest.mark.embedded_only("raw frames")
async def test_an_oversized_message_still_arriving_does_not_hold_the_close(port: int) -> None:
    """The client goes on sending the payload it announced: TCP ends all the same."""
    async with open_raw(port, "/rooms/lobby/websocket") as client:
        assert (await client.receive_frame()) is not None
        await client.send(client_frame(TEXT, length=2**40)[:14])
        chunk = b"\x00" * 65536

        async def flood() -> None:
            try:
                while True:
                    await client.send(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the server is gone

        last: ServerFrame | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            with trio.fail_after(GUARD):
                while (received := await client.receive_frame()) is not None:
                    last = received
            nursery.cancel_scope.cancel()
        assert last is not None
        assert last.opcode == CLOSE
        assert last.close_code == 1009


@pytest.mark.embedded_only("raw frames")
async def test_a_peer_that_closes_after_a_1007_still_gets_the_handshake(port: int) -> None:
    """The close frame comes first, whole, then the end: a client that answers it can."""
    async with open_raw(port, "/rooms/lobby/websocket") as client:
        assert (await client.receive_frame()) is not None
        await client.send(client_frame(TEXT, b"\xc3\x28"))
        with trio.fail_after(GUARD):
            while (frame := await client.receive_frame()) is not None and frame.opcode != CLOSE:
                pass
        assert frame is not None
        assert frame.close_code == 1007
        # Answering is harmless (the server may have closed already: a reset is fine).
        with contextlib.suppress(trio.BrokenResourceError):
            await client.send(client_frame(CLOSE, close_payload(1007)))
        with trio.fail_after(GUARD):
            assert await client.receive_until_eof() == []
