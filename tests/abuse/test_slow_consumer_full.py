"""The full slow-consumer scenario: one client never reads while 20 get 200 messages/s."""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms, RoomsConfig
from trio_rooms._core.session import runner_of

from ..chat_app import Chat, ChatRoom, UserJoined, UserLeft
from ..peer import server_codec
from ..sockets import CLOSE, PING, RawClient, client_frame, close_payload, open_raw

HEALTHY = 20
RATE = 200  # broadcasts per second
PAYLOAD = "x" * 4000  # 256 of these fill RoomsConfig's default bounds (256 messages, 1 MiB)
AFTER = 100  # broadcasts after the slow client was cut off
#: Broadcasts by which the slow client is cut off: 8 MB, past its queue's 1 MiB and any
#: socket buffers (the kernel's send buffer grows to tcp_wmem's 4 MiB at most). A count,
#: not seconds: a loaded box sends them later, not more of them.
CUT_OFF_BOUND = 2000
SLOW_RCVBUF = 4096  # the kernel's smallest: the slow client's socket fills at once


# close_timeout bounds how long the server waits for a client that reads nothing to take
# its close frame; shorter than the default to keep the test quick.
@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(close_timeout=0.5)


async def test_a_slow_consumer_is_cut_off_and_the_healthy_ones_get_everything(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """1008 within 2000 broadcasts, its queue never over outbound_max_bytes, 20 others get
    all in order."""
    config = rooms.config
    received: list[list[int]] = [[] for _ in range(HEALTHY)]
    left: list[list[UserLeft]] = [[] for _ in range(HEALTHY)]
    sent: list[int] = []
    max_queued = max_total_queued = 0
    with trio.fail_after(60):
        async with (
            open_raw(port, "/rooms/busy/websocket?name=slow", rcvbuf=SLOW_RCVBUF) as slow,
            trio.open_nursery() as nursery,
        ):
            assert isinstance(await _decode(slow), UserJoined)
            # From here on `slow` reads nothing until it is cut off.
            room = await rooms.get("busy")
            (slow_session,) = room.sessions.values()
            healthy: list[RawClient] = [
                await nursery.start(_join, port, f"healthy{i}") for i in range(HEALTHY)
            ]
            async with trio.open_nursery() as readers:
                for client, log, leaves in zip(healthy, received, left, strict=True):
                    readers.start_soon(_read_chats, client, log, leaves)
                started = trio.current_time()
                cut_off_at: int | None = None
                seq = 0
                extra = 0
                while extra < AFTER:
                    await trio.sleep_until(started + seq / RATE)
                    room.broadcast(Chat(user_id="server", name="server", text=f"{seq}:{PAYLOAD}"))
                    sent.append(seq)
                    seq += 1
                    queued = runner_of(slow_session).outbound.queued_bytes
                    max_queued = max(max_queued, queued)
                    max_total_queued = max(max_total_queued, rooms.statistics().queued_bytes)
                    if cut_off_at is None:
                        if slow_session.closed:
                            cut_off_at = len(sent)
                        elif len(sent) > CUT_OFF_BOUND:
                            pytest.fail(f"not cut off after {len(sent)} broadcasts")
                    else:
                        extra += 1
                room.broadcast(Chat(user_id="server", name="server", text="end"))
            # Now the slow client reads what reached it, and the end of its connection.
            slow_seqs, slow_code = await _drain(slow)
            closed = await room.wait_closed(1)
            # Its leave reaches the others, after "end" if on_close ran after it.
            for client, leaves in zip(healthy, left, strict=True):
                if not leaves:
                    leave = await _decode(client)
                    assert isinstance(leave, UserLeft)
                    leaves.append(leave)
            nursery.cancel_scope.cancel()
    assert closed[0] == ("slow", 1008)
    assert cut_off_at is not None
    assert cut_off_at <= CUT_OFF_BOUND
    assert max_queued <= config.outbound_max_bytes
    assert max_total_queued <= (HEALTHY + 1) * config.outbound_max_bytes
    for log in received:
        assert log == sent
    assert left == [[UserLeft(user_id=slow_session.id, code=1008)]] * HEALTHY
    # What the slow client got is the start of the sequence, without a gap.
    assert slow_seqs == list(range(len(slow_seqs)))
    assert slow_code in (1008, None)  # its close frame, unless the write timed out first
    print(
        f"cut off at broadcast {cut_off_at} of {len(sent) - AFTER}; "
        f"it had read {len(slow_seqs)}, queued at most {max_queued} bytes"
    )


async def _join(port: int, name: str, *, task_status: trio.TaskStatus[RawClient]) -> None:
    async with open_raw(port, f"/rooms/busy/websocket?name={name}") as client:
        while True:
            message = await _decode(client)
            if isinstance(message, UserJoined) and message.name == name:
                break
        task_status.started(client)
        await trio.sleep_forever()


async def _decode(client: RawClient) -> object:
    return server_codec.decode(await client.receive_text())


async def _read_chats(client: RawClient, log: list[int], left: list[UserLeft]) -> None:
    while True:
        message = await _decode(client)
        if isinstance(message, UserLeft):
            left.append(message)
        elif isinstance(message, Chat):
            if message.text == "end":
                return
            log.append(int(message.text.partition(":")[0]))


async def _drain(client: RawClient) -> tuple[list[int], int | None]:
    """Read the slow client's socket to its end: the sequence numbers, and the close code."""
    seqs: list[int] = []
    while (frame := await client.receive_frame()) is not None:
        if frame.opcode == CLOSE:
            await client.send(client_frame(CLOSE, close_payload(frame.close_code)))
            await client.receive_until_eof()
            return seqs, frame.close_code
        if frame.opcode == PING:
            continue
        message = server_codec.decode(frame.payload.decode())
        if isinstance(message, Chat):
            seqs.append(int(message.text.partition(":")[0]))
    return seqs, None
