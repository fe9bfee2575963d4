"""A room-wide burst against a server in another process: no prompt reader is cut off.

The outside suite's setup (issue 11): 1,000 raw clients in 20 rooms of 50 each send 10
messages at once, so every client has 500 broadcasts coming at the same moment, far more
than ``outbound_max_messages`` (256) before any session's writer has run. A client that
never reads, in the same burst, must still be closed with 1008.
"""

from __future__ import annotations

import resource
from collections.abc import Awaitable, Callable, Iterator

import orjson
import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from .burst_app import open_server
from .servers import Transport
from .sockets import (
    CLOSE,
    TEXT,
    RawClient,
    ServerFrame,
    client_frame,
    close_payload,
    connect_socket,
    open_raw,
    raw_handshake,
)

pytestmark = pytest.mark.slow

#: Rooms per transport: hypercorn writes each frame with its own wsproto event and
#: ``send_all`` (about 4,000 deliveries/s on the 2-core box), so it gets fewer rooms of
#: the same burst: every reader still has 500 messages coming at once.
ROOMS: dict[Transport, int] = {"embedded": 20, "hypercorn": 2}
PER_ROOM = 50
BURST = 10  # messages each client sends at once
TEXT_SIZE = 100  # bytes of text in each burst message
TAIL = 32  # big messages sent one at a time after the burst, more than the stalled client's
TAIL_SIZE = 64 * 1024  # queue can hold (outbound_max_bytes, 1 MiB) on top of its kernel buffers
STALLED_RCVBUF = 4096  # the kernel's smallest receive buffer: the stalled socket fills at once


@pytest.fixture(autouse=True)
def _enough_descriptors() -> Iterator[None]:
    """Raise the soft limit on open files for the clients' sockets (and restore it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * ROOMS["embedded"] * PER_ROOM
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _chat(text: str) -> bytes:
    return client_frame(TEXT, orjson.dumps({"type": "message", "text": text}))


def _is_chat(frame: ServerFrame) -> bool:
    return frame.opcode == TEXT and frame.payload.startswith(b'{"type":"chat"')


async def _join(port: int, room: int, name: str) -> RawClient:
    """Connect ``name`` to room ``room`` and read until the server announced it."""
    resource = f"/rooms/r{room}/websocket?name={name}"
    client = await raw_handshake(await connect_socket(port), resource)
    while True:
        message = orjson.loads(await client.receive_text())
        if message.get("type") == "userJoined" and message.get("name") == name:
            return client


async def _join_all(port: int, rooms: int) -> list[list[RawClient]]:
    """``PER_ROOM`` clients in each of ``rooms`` rooms, every one announced."""
    clients: list[list[RawClient]] = [[] for _ in range(rooms)]
    limiter = trio.CapacityLimiter(100)  # within the server's listen backlog

    async def join(room: int, index: int) -> None:
        async with limiter:
            clients[room].append(await _join(port, room, f"c{room}-{index}"))

    async with trio.open_nursery() as nursery:
        for room in range(rooms):
            for index in range(PER_ROOM):
                nursery.start_soon(join, room, index)
    return clients


async def _read_chats(client: RawClient, count: int) -> int | None:
    """Read ``count`` chats: None, or the code of a close that came first (1006: no frame)."""
    while count:
        frame = await client.receive_frame()
        if frame is None:
            return 1006
        if frame.opcode == CLOSE:
            return frame.close_code
        count -= _is_chat(frame)
    return None


async def _burst(clients: list[list[RawClient]]) -> list[int | None]:
    """Every client sends BURST messages at once, then reads the room's; their close codes."""
    go = trio.Event()
    codes: list[int | None] = []
    text = "x" * TEXT_SIZE

    async def run(client: RawClient, name: str) -> None:
        burst = b"".join(_chat(f"{name}:{k}:{text}") for k in range(BURST))
        await go.wait()
        await client.send(burst)
        codes.append(await _read_chats(client, PER_ROOM * BURST))

    async with trio.open_nursery() as nursery:
        for room, members in enumerate(clients):
            for index, client in enumerate(members):
                nursery.start_soon(run, client, f"{room}-{index}")
        await wait_all_tasks_blocked()  # every client waits for the signal
        go.set()
    return codes


async def _tail(members: list[RawClient]) -> list[int | None]:
    """Big messages to the room one at a time, each read by every member before the next."""
    codes: list[int | None] = []
    text = "y" * TAIL_SIZE
    for seq in range(TAIL):
        await members[0].send(_chat(f"{seq}:{text}"))
        async with trio.open_nursery() as nursery:
            for client in members:
                nursery.start_soon(_append, codes, _read_chats, client, 1)
    return codes


async def _append(
    codes: list[int | None],
    read: Callable[[RawClient, int], Awaitable[int | None]],
    client: RawClient,
    count: int,
) -> None:
    codes.append(await read(client, count))


async def _drain(client: RawClient) -> tuple[int, int | None]:
    """Read the stalled client's socket at last: its chats, and the server's close code."""
    chats = 0
    while (frame := await client.receive_frame()) is not None:
        if frame.opcode == CLOSE:
            await client.send(client_frame(CLOSE, close_payload(frame.close_code)))
            return chats, frame.close_code
        chats += _is_chat(frame)
    return chats, None


async def test_a_room_wide_burst_closes_no_prompt_reader_and_cuts_off_a_stalled_one(
    transport: Transport,
) -> None:
    """Every prompt reader gets all 500 messages of a burst; a reader that never reads gets 1008."""
    async with open_server(transport) as (_, port):
        with trio.fail_after(90):
            async with open_raw(
                port, "/rooms/r0/websocket?name=stalled", rcvbuf=STALLED_RCVBUF
            ) as stalled:
                # From here on `stalled` reads nothing until the end.
                clients = await _join_all(port, ROOMS[transport])
                started = trio.current_time()
                burst_codes = await _burst(clients)
                took = trio.current_time() - started
                tail_codes = await _tail(clients[0])
                stalled_chats, stalled_code = await _drain(stalled)
                for members in clients:
                    for client in members:
                        await client.stream.aclose()
    print(
        f"{transport}: the burst took {took:.2f} s; the stalled client read {stalled_chats} chats"
    )
    assert burst_codes == [None] * ROOMS[transport] * PER_ROOM
    assert tail_codes == [None] * TAIL * PER_ROOM
    assert stalled_code == 1008
    assert stalled_chats < PER_ROOM * BURST + TAIL
