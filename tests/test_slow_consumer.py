"""A client that never reads is cut off; the healthy ones, however busy, lose nothing."""

from __future__ import annotations

import orjson
import pytest
import trio

from trio_rooms import Rooms, RoomsConfig
from trio_rooms._core.session import runner_of

from .chat_app import Chat, ChatRoom, UserJoined
from .peer import Peer, connect
from .sockets import TEXT, RawClient, client_frame, open_raw

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


BIG_TEXT = 1024 * 1024 - 64  # the largest chat a client may send (max_message_size: 1 MiB)
READERS = 5


async def test_a_max_size_broadcast_after_a_200_kb_one_reaches_busy_readers(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Its broadcast frame, over outbound_max_bytes, reaches readers still writing the last one."""
    # The client's message fits max_message_size; the chat it is broadcast as (with the
    # author's id and name) is larger than outbound_max_bytes.
    assert len(orjson.dumps({"type": "message", "text": "b" * BIG_TEXT})) <= 1024 * 1024
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            members: list[RawClient] = [
                await nursery.start(_join_raw, port, f"reader{i}") for i in range(READERS)
            ]
            # Back to back: every member's writer is busy with the 200 KB frame (or still
            # has it queued) when the 1 MiB one is broadcast.
            await members[0].send(_say("a" * 200_000) + _say("b" * BIG_TEXT) + _say("end"))
            for member in members:
                texts = [await _chat_text(member) for _ in range(3)]
                assert [(t[0], len(t)) for t in texts] == [
                    ("a", 200_000),
                    ("b", BIG_TEXT),
                    ("e", 3),
                ]
            nursery.cancel_scope.cancel()
    assert rooms.statistics().closes.get(1008) is None


# Quick: the test waits for the timeout to pass with the slow client's queue over its bound.
@pytest.mark.parametrize(
    "config", [RoomsConfig(slow_consumer_timeout=0.5, close_timeout=0.5, rate_limit=None)]
)
async def test_a_client_over_the_message_bound_for_the_timeout_is_closed_with_1008(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Small messages: never near outbound_max_bytes, it is closed once over the message bound."""
    config = rooms.config
    with trio.fail_after(30):
        async with open_raw(port, "/rooms/busy/websocket?name=slow", rcvbuf=4096) as slow:
            await slow.receive_text()  # its own arrival: it is in the room
            # From here on it reads nothing.
            room = await rooms.get("busy")
            (session,) = room.sessions.values()
            outbound = runner_of(session).outbound
            over_since: float | None = None
            max_queued = 0
            seq = 0
            while not session.closed:
                room.broadcast(Chat(user_id="server", name="server", text=f"{seq:0100}"))
                seq += 1
                max_queued = max(max_queued, outbound.queued_bytes)
                if over_since is None and len(outbound) >= config.outbound_max_messages:
                    over_since = trio.current_time()
                await trio.sleep(0.001)  # sync-ok: paces the broadcasts
            closed_at = trio.current_time()
            assert await room.wait_closed(1) == [("slow", 1008)]
    assert over_since is not None
    assert closed_at - over_since >= config.slow_consumer_timeout
    assert max_queued < config.outbound_max_bytes // 4


def _say(text: str) -> bytes:
    return client_frame(TEXT, orjson.dumps({"type": "message", "text": text}))


async def _join_raw(port: int, name: str, *, task_status: trio.TaskStatus[RawClient]) -> None:
    async with open_raw(port, f"/rooms/busy/websocket?name={name}") as client:
        while True:
            message = orjson.loads(await client.receive_text())
            if message.get("type") == "userJoined" and message.get("name") == name:
                break
        task_status.started(client)
        await trio.sleep_forever()


async def _chat_text(client: RawClient) -> str:
    """The text of the next chat, skipping presence messages."""
    while True:
        message = orjson.loads(await client.receive_text())
        if message.get("type") == "chat":
            text: str = message["text"]
            return text
