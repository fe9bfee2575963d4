"""Oversized messages: closed with 1009 at once, without buffering more than the limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from trio_rooms import Rooms

from ..chat_app import Chat, ChatRoom, UserJoined, Whisper
from ..peer import connect
from ..servers import Transport
from ..sockets import CONTINUATION, TEXT, RawClient, client_frame, open_raw
from .measure import MiB, rss

LIMIT = 1 * MiB  # RoomsConfig.max_message_size's default, the one these tests run with
CHUNK = 64 * 1024
ZERO_KEY = b"\x00\x00\x00\x00"  # masked with a zero key: one payload chunk is reused as is
SEND_CAP = 64 * MiB  # the most a test sends, should the server never close
CLOSE_BOUND = 1.0  # seconds from crossing the limit to the server's close frame
RSS_BOUND = 8 * MiB  # the most the process may grow while it streams


def _one_frame(sent: int) -> bytes:
    """A single text frame announcing 4 MiB (four times the limit)."""
    if sent == 0:
        return client_frame(TEXT, b"a" * CHUNK, length=4 * MiB, key=ZERO_KEY)
    return b"a" * CHUNK


def _fragments(sent: int) -> bytes:
    """A text message in 16 KiB fragments, each far under the limit."""
    opcode = TEXT if sent == 0 else CONTINUATION
    return client_frame(opcode, b"b" * (16 * 1024), fin=False, key=ZERO_KEY)


def _lying_header(sent: int) -> bytes:
    """A frame header announcing 2**63 - 1 bytes, then as many as it takes."""
    if sent == 0:
        return client_frame(TEXT, b"c" * CHUNK, length=2**63 - 1, key=ZERO_KEY)
    return b"c" * CHUNK


VARIANTS: dict[str, Callable[[int], bytes]] = {
    "one frame": _one_frame,
    "fragments": _fragments,
    "2**63-1 header": _lying_header,
}


@pytest.mark.parametrize("make", list(VARIANTS.values()), ids=list(VARIANTS))
async def test_an_oversized_message_is_closed_with_1009_in_bounded_memory(
    port: int, rooms: Rooms[ChatRoom], transport: Transport, make: Callable[[int], bytes]
) -> None:
    """Close 1009 within a second of crossing the limit; the process grows by a few MB at most."""
    assert rooms.config.max_message_size == LIMIT
    await _warm_up(port)
    baseline = peak = rss()
    crossed_at: float | None = None
    closed_at: float | None = None
    code: int | None = None
    with trio.fail_after(20):
        async with open_raw(port, "/rooms/lobby/websocket") as client:
            await client.receive_text()  # admitted: our own join
            closed = trio.Event()

            async def read_close() -> None:
                nonlocal code, closed_at
                code = await _close_code(client)
                closed_at = trio.current_time()
                closed.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_close)
                sent = 0
                while sent < SEND_CAP and not closed.is_set():
                    data = make(sent)
                    try:
                        await client.send(data)
                    except trio.BrokenResourceError:
                        break
                    sent += len(data)
                    if crossed_at is None and sent > LIMIT + 16:
                        crossed_at = trio.current_time()
                    peak = max(peak, rss())
        # Our socket is closed mid-frame: the server's drain ends and on_close runs.
        # Behind hypercorn, hypercorn closes with 1009 and the session sees 1006.
        room = await rooms.get("lobby")
        session_code = 1009 if transport == "embedded" else 1006
        assert await room.wait_closed(1) == [("anon", session_code)]
    assert code == 1009
    assert closed_at is not None
    if crossed_at is not None:  # else refused by a frame header before the limit was sent
        assert closed_at - crossed_at < CLOSE_BOUND
    elif transport == "hypercorn" or make is _fragments:
        raise AssertionError("closed before the limit was crossed: only a header can tell")
    assert peak - baseline < RSS_BOUND, f"grew by {(peak - baseline) / MiB:.1f} MiB"


async def _close_code(client: RawClient) -> int | None:
    while True:
        frame = await client.receive_frame()
        if frame is None:
            return None
        if frame.opcode == 0x8:
            return frame.close_code


async def _warm_up(port: int) -> None:
    """A normal exchange, so that the baseline includes what any connection allocates."""
    async with connect(port, "warm-up") as client:
        await client.receive_until(UserJoined)
        await client.send(Whisper(text="x" * 1000))
        assert isinstance(await client.receive(), Chat)


@pytest.mark.embedded_only("the announced length is read by the embedded server's own framing")
async def test_a_header_announcing_more_than_the_limit_is_refused_at_once(port: int) -> None:
    """2**63 - 1 announced, 1 KiB sent: the length alone is over the limit, so 1009 at once."""
    async with open_raw(port, "/rooms/lobby/websocket") as client:
        await client.receive_text()
        await client.send(client_frame(TEXT, b"d" * 1024, length=2**63 - 1, key=ZERO_KEY))
        with trio.fail_after(CLOSE_BOUND):
            assert await _close_code(client) == 1009
