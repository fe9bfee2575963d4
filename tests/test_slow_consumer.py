"""A client that never reads is cut off; the healthy ones lose nothing."""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms, RoomsConfig

from .chat_app import Chat, ChatRoom, UserJoined
from .peer import Peer, connect

HEALTHY = 20
PAYLOAD = "x" * 16_000  # big frames fill the slow client's socket buffers quickly
BATCH = 16  # the sender waits for every healthy client after each batch
MAX_MESSAGES = 4_000


# close_timeout bounds how long the server waits for a client that reads nothing to take
# its close frame; shorter than the default to keep the test quick.
@pytest.mark.parametrize("config", [RoomsConfig(close_timeout=0.5)])
async def test_a_client_that_never_reads_is_closed_with_1008_and_the_others_get_everything(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """The slow client is closed with 1008; 20 healthy clients receive every message in order."""
    acks_send, acks = trio.open_memory_channel[int](HEALTHY)
    received: list[list[int]] = []
    sent: list[int] = []
    done = trio.Event()

    async def healthy(peer: Peer, log: list[int]) -> None:
        while True:
            message = await peer.receive()
            if not isinstance(message, Chat):
                continue
            if message.text == "end":
                return
            log.append(int(message.text.partition(":")[0]))
            if len(log) % BATCH == 0:
                await acks_send.send(len(log))

    with trio.fail_after(60):
        async with connect(port, "busy", "name=slow") as slow:
            await slow.receive_until(UserJoined)
            # From here on `slow` never reads: trio-websocket buffers one message, then
            # stops reading its socket.
            async with trio.open_nursery() as nursery:
                peers: list[Peer] = [await nursery.start(_join, port) for _ in range(HEALTHY)]
                room = await rooms.get("busy")
                nursery.start_soon(_wait_for_slow, room, done)
                async with trio.open_nursery() as readers:
                    for peer in peers:
                        received.append(log := [])
                        readers.start_soon(healthy, peer, log)
                    for seq in range(MAX_MESSAGES):
                        room.broadcast(
                            Chat(user_id="server", name="server", text=f"{seq}:{PAYLOAD}")
                        )
                        sent.append(seq)
                        if len(sent) % BATCH == 0:
                            for _ in range(HEALTHY):
                                await acks.receive()
                            if done.is_set():
                                break
                    room.broadcast(Chat(user_id="server", name="server", text="end"))
                nursery.cancel_scope.cancel()
    assert done.is_set(), "the slow client was never closed"
    assert ("slow", 1008) in room.closed
    assert rooms.statistics().closes.get(1008) == 1
    for log in received:
        assert log == sent


async def _join(port: int, *, task_status: trio.TaskStatus[Peer]) -> None:
    async with connect(port, "busy") as peer:
        await peer.receive_until(UserJoined)
        task_status.started(peer)
        await trio.sleep_forever()


async def _wait_for_slow(room: ChatRoom, done: trio.Event) -> None:
    while ("slow", 1008) not in room.closed:
        await room.wait_closed(len(room.closed) + 1)
    done.set()
