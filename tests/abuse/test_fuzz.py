"""A seeded fuzz of hand-built frames: every connection ends cleanly, the server stays up."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import NamedTuple

import pytest
import trio
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from trio_rooms import Rooms

from ..chat_app import Chat, ChatRoom, UserJoined, Whisper
from ..peer import connect
from ..servers import start_server
from ..sockets import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    client_frame,
    close_payload,
    connect_socket,
    handshake_request,
    raw_handshake,
    read_http_response,
)

SEED = 1234
CONNECTIONS = 300
HYPERCORN_CONNECTIONS = 60
CONCURRENCY = 10
CONNECTION_BOUND = 5.0  # seconds for one fuzzed connection, from connect to its end

#: Close codes an endpoint may send (RFC 6455 section 7.4), the application range included.
VALID_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011}) | frozenset(
    range(3000, 5000)
)
ENDED = None  # the TCP connection ended without a close frame from the server


class Case(NamedTuple):
    """What one connection sends after its handshake, and the endings it may have."""

    data: bytes
    #: The server's close codes (or ENDED) this case may end with; None: any valid one.
    expect: frozenset[int | None] | None = None


def _json(rng: random.Random) -> bytes:
    return b'{"type": "message", "text": "%d"}' % rng.randrange(10**6)


def _reserved_opcode(rng: random.Random) -> Case:
    opcode = rng.choice([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    return Case(client_frame(opcode, rng.randbytes(rng.randrange(20))), frozenset({1002}))


def _reserved_bits(rng: random.Random) -> Case:
    opcode = rng.choice([TEXT, BINARY, PING])
    return Case(client_frame(opcode, _json(rng), rsv=rng.randrange(1, 8)), frozenset({1002}))


def _unmasked(rng: random.Random) -> Case:
    return Case(client_frame(rng.choice([TEXT, BINARY]), _json(rng), key=None), frozenset({1002}))


def _long_control(rng: random.Random) -> Case:
    payload = rng.randbytes(rng.randrange(126, 400))
    return Case(client_frame(rng.choice([PING, PONG, CLOSE]), payload), frozenset({1002}))


def _fragmented_control(rng: random.Random) -> Case:
    frame = client_frame(rng.choice([PING, PONG, CLOSE]), b"", fin=False)
    return Case(frame, frozenset({1002}))


def _continuation_without_start(rng: random.Random) -> Case:
    frame = client_frame(CONTINUATION, _json(rng), fin=rng.random() < 0.5)
    return Case(frame, frozenset({1002}))


def _new_message_mid_fragment(rng: random.Random) -> Case:
    first = client_frame(TEXT, b'{"type": ', fin=False)
    return Case(first + client_frame(rng.choice([TEXT, BINARY]), _json(rng)), frozenset({1002}))


def _non_minimal_length(rng: random.Random) -> Case:
    size = rng.randrange(126)
    if rng.random() < 0.5:
        header = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return Case(header + b"\x00\x00\x00\x00" + b"a" * size, frozenset({1002}))


def _length_msb_set(rng: random.Random) -> Case:
    size = 2**63 + rng.randrange(2**20)
    header = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return Case(header + b"\x00\x00\x00\x00", frozenset({1002}))


def _lying_length(rng: random.Random) -> Case:
    """More announced than sent, then the end of the stream (embedded: 1 MiB limit)."""
    announced = rng.choice([rng.randrange(2, 126), rng.randrange(126, 65536), 2**40])
    size = rng.randrange(min(announced, 5000))
    if rng.random() < 0.5:
        frame = client_frame(TEXT, b"a" * size, length=announced)
    else:
        frame = client_frame(BINARY, rng.randbytes(size), length=announced)
    # Announcing more than max_message_size is refused by the header alone.
    return Case(frame, frozenset({1009 if announced > 2**20 else ENDED}))


def _invalid_utf8(rng: random.Random) -> Case:
    bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
    return Case(client_frame(TEXT, b"text " + bad), frozenset({1007}))


def _bad_close(rng: random.Random) -> Case:
    kind = rng.randrange(3)
    if kind == 0:
        return Case(client_frame(CLOSE, b"\x03"), frozenset({1002}))  # a one-byte code
    if kind == 1:
        code = rng.choice([0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
        return Case(client_frame(CLOSE, close_payload(code)), frozenset({1002}))
    return Case(client_frame(CLOSE, b"\x03\xe8\xff\xfe"), frozenset({1007}))


def _valid_close(rng: random.Random) -> Case:
    """A valid close code is echoed (1000 for none at all)."""
    if rng.random() < 0.2:
        return Case(client_frame(CLOSE), frozenset({1000}))
    code = rng.choice([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
    return Case(client_frame(CLOSE, close_payload(code, "bye")), frozenset({code}))


def _random_bytes(rng: random.Random) -> Case:
    return Case(rng.randbytes(rng.randrange(1, 300)))


def _bit_flips(rng: random.Random) -> Case:
    frame = bytearray(client_frame(TEXT, _json(rng)))
    for _ in range(rng.randrange(1, 4)):
        frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    return Case(bytes(frame))


def _valid_then_garbage(rng: random.Random) -> Case:
    return Case(client_frame(TEXT, _json(rng)) + rng.randbytes(rng.randrange(1, 100)))


def _wsproto_fragments(rng: random.Random) -> Case:
    """A valid message through wsproto, in random fragments, cut off at a random byte."""
    ws = Connection(ConnectionType.CLIENT)  # open from the start: frames only
    text = _json(rng).decode()
    cuts = sorted(rng.sample(range(1, len(text)), rng.randrange(1, 4)))
    data = b""
    for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
        data += ws.send(TextMessage(data=text[start:end], message_finished=end == len(text)))
    return Case(data[: rng.randrange(1, len(data) + 1)])


CASES: list[Callable[[random.Random], Case]] = [
    _reserved_opcode,
    _reserved_bits,
    _unmasked,
    _long_control,
    _fragmented_control,
    _continuation_without_start,
    _new_message_mid_fragment,
    _non_minimal_length,
    _length_msb_set,
    _lying_length,
    _invalid_utf8,
    _bad_close,
    _valid_close,
    _random_bytes,
    _bit_flips,
    _valid_then_garbage,
    _wsproto_fragments,
]


async def _run_case(port: int, case: Case) -> int | None:
    """Send ``case`` after a handshake, then EOF; the server's close code, or ENDED."""
    stream = await connect_socket(port)
    async with stream:
        client = await raw_handshake(stream, "/rooms/fuzz/websocket")
        try:
            await client.send(case.data)
            await stream.send_eof()
        except trio.BrokenResourceError:
            pass  # the server closed first: what it sent is still readable
        frames = await client.receive_until_eof()
    codes = [frame.close_code for frame in frames if frame.opcode == CLOSE]
    return codes[0] if codes else ENDED


async def _fuzz(port: int, count: int, *, read: bool = True) -> list[tuple[str, Case, int | None]]:
    rng = random.Random(SEED)
    cases = [(CASES[i % len(CASES)].__name__, CASES[i % len(CASES)](rng)) for i in range(count)]
    results: list[tuple[str, Case, int | None]] = []
    limiter = trio.Semaphore(CONCURRENCY)

    async def one(name: str, case: Case) -> None:
        async with limiter:
            with trio.fail_after(CONNECTION_BOUND):
                results.append((name, case, await _run_case(port, case)))

    async with trio.open_nursery() as nursery:
        for name, case in cases:
            nursery.start_soon(one, name, case)
    return results


async def _still_serves(port: int) -> None:
    with trio.fail_after(5):
        async with connect(port, "after-the-fuzz") as client:
            await client.receive_until(UserJoined)
            await client.send(Whisper(text="still up"))
            reply = await client.receive()
    assert isinstance(reply, Chat)
    assert reply.text == "still up"


def _acceptable(case: Case, code: int | None) -> bool:
    if case.expect is not None:
        return code in case.expect
    return code is ENDED or code in VALID_CODES


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("trio_rooms") and record.levelno > logging.WARNING
    ]


@pytest.mark.embedded_only("raw frames: behind hypercorn, hypercorn's wsproto judges them")
async def test_frame_fuzz(
    port: int, rooms: Rooms[ChatRoom], caplog: pytest.LogCaptureFixture
) -> None:
    """300 seeded connections: each ends with its expected close code (or a valid one)."""
    with trio.fail_after(60):
        results = await _fuzz(port, CONNECTIONS)
    wrong = [
        (name, case.data[:40], code) for name, case, code in results if not _acceptable(case, code)
    ]
    assert wrong == [], wrong
    assert len(results) == CONNECTIONS
    await _still_serves(port)
    with trio.fail_after(5):
        room = await rooms.get("fuzz")
        await room.wait_closed(CONNECTIONS)
    assert rooms.statistics().sessions == 0
    assert _errors(caplog) == []


async def test_frame_fuzz_behind_hypercorn(
    rooms: Rooms[ChatRoom], caplog: pytest.LogCaptureFixture
) -> None:
    """A smaller fuzz through hypercorn: every connection ends, and the server stays up."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, "hypercorn", rooms)
            results = await _fuzz(port, HYPERCORN_CONNECTIONS)
            assert len(results) == HYPERCORN_CONNECTIONS
            await _still_serves(port)
            nursery.cancel_scope.cancel()
    assert _errors(caplog) == []


async def test_one_bad_frame_does_not_stop_hypercorn(rooms: Rooms[ChatRoom]) -> None:
    """The smallest case: a frame with a reserved opcode right after the handshake.

    With hypercorn's own pings on (``websocket_ping_interval``), one such connection in
    three or so stopped hypercorn 0.18 (a BusyResourceError out of its ``protocol_send``);
    `hypercorn_config` leaves them off. 100 connections, to catch the race.
    """
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, "hypercorn", rooms)
            for _ in range(100):
                stream = await connect_socket(port)
                async with stream:
                    client = await raw_handshake(stream, "/rooms/fuzz/websocket")
                    await client.send(client_frame(0x3))
                    await client.receive_until_eof()
            await _still_serves(port)
            nursery.cancel_scope.cancel()


async def test_garbage_instead_of_a_handshake(
    port: int, rooms: Rooms[ChatRoom], caplog: pytest.LogCaptureFixture
) -> None:
    """Random bytes or a handshake cut short, then EOF: 400 or closed, never 101."""
    rng = random.Random(SEED)
    request = handshake_request("/rooms/fuzz/websocket")
    attempts = [rng.randbytes(rng.randrange(1, 500)) for _ in range(20)]
    attempts += [request[: rng.randrange(1, len(request))] for _ in range(10)]
    with trio.fail_after(20):
        for data in attempts:
            stream = await connect_socket(port)
            async with stream:
                await stream.send_all(data)
                await stream.send_eof()
                status, _, _ = await read_http_response(stream)
            assert status in (0, 400), data
    await _still_serves(port)
    assert rooms.statistics().rooms == 1  # the check's own room only
    assert _errors(caplog) == []
