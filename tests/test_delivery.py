"""Delivery policies over real sockets: a stalled reader under a fast feed, and its neighbours."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio

import trio_rooms
from trio_rooms import Coalesce, DropOldest, Rooms, RoomsConfig
from trio_rooms._core.session import runner_of
from trio_rooms.client import Reconnected, ReconnectPolicy, RoomClient, open_room_client

from .sockets import RawClient, open_raw
from .tags_app import CLIENT, SERVER, ClientMsg, Said, ServerMsg, TagRoom, TagsSet, Tick, Update

Client = RoomClient[ServerMsg, ClientMsg]
PAD = "x" * 1000  # a stalled reader's socket buffers fill in well under a second
KEYS = 10


@asynccontextmanager
async def _serve(config: RoomsConfig) -> AsyncGenerator[tuple[Rooms[TagRoom], int]]:
    async with (
        trio_rooms.open_rooms(TagRoom, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def _message(client: RawClient) -> dict[str, Any]:
    content: dict[str, Any] = orjson.loads(await client.receive_text())
    return content


async def _healthy(port: int, log: list[ServerMsg], *, task_status: trio.TaskStatus[None]) -> None:
    """A client that reads everything into ``log`` until the feed's ``Said("end")``."""
    url = f"ws://127.0.0.1:{port}/rooms/feed/websocket"
    async with open_room_client(url, SERVER, CLIENT, resume=False) as client:
        assert isinstance(await client.receive(), TagsSet)
        task_status.started()
        while (message := await client.receive()) != Said("end"):
            log.append(message)


@pytest.mark.parametrize("config", [RoomsConfig()])
async def test_a_stalled_reader_under_a_fast_tick_keeps_one_frame_per_key_and_gets_the_latest(
    config: RoomsConfig,
) -> None:
    """1,000 updates/s on 10 keys: at most 10 queued, then the latest of each; others get all."""
    healthy: list[ServerMsg] = []
    async with (
        _serve(config) as (rooms, port),
        open_raw(port, "/rooms/feed/websocket", rcvbuf=4096) as slow,
        trio.open_nursery() as nursery,
    ):
        slow_id = (await _message(slow))["sessionId"]  # admitted; from here it reads nothing
        await nursery.start(_healthy, port, healthy)
        room = await rooms.get("feed")
        outbound = runner_of(room.sessions[slow_id]).outbound
        latest: dict[str, int] = {}
        most_queued = sent = 0
        with trio.fail_after(60):
            while rooms.statistics().by_room["feed"].coalesced < 2000:
                key = f"k{sent % KEYS}"
                room.broadcast(Update(key, sent, PAD))
                latest[key] = sent
                sent += 1
                most_queued = max(most_queued, len(outbound))
                await trio.sleep(0.001)  # sync-ok: the tick, 1,000 updates a second
            stats = rooms.statistics()
            room.broadcast(Said("end"))
            received: dict[str, list[int]] = {}
            while (message := await _message(slow))["type"] != "said":
                received.setdefault(message["key"], []).append(message["value"])
    assert most_queued == KEYS
    assert {key: values[-1] for key, values in received.items()} == latest
    assert all(values == sorted(values) for values in received.values())
    assert sum(map(len, received.values())) + stats.coalesced == sent
    assert healthy == [Update(f"k{n % KEYS}", n, PAD) for n in range(sent)]
    feed = stats.by_room["feed"]
    assert (feed.sessions, feed.slow_consumers, feed.dropped_oldest) == (2, 0, 0)
    assert feed.queued_frames <= KEYS
    assert stats.coalesced == feed.coalesced
    assert 1008 not in stats.closes


@pytest.mark.parametrize("config", [RoomsConfig(outbound_max_messages=20)])
async def test_drop_oldest_keeps_the_newest_drops_only_its_own_and_counts_every_drop(
    config: RoomsConfig,
) -> None:
    """A stalled reader loses old ticks, never a chat between them; every tick is got or counted."""
    healthy: list[ServerMsg] = []
    async with (
        _serve(config) as (rooms, port),
        open_raw(port, "/rooms/feed/websocket", rcvbuf=4096) as slow,
        trio.open_nursery() as nursery,
    ):
        slow_id = (await _message(slow))["sessionId"]
        await nursery.start(_healthy, port, healthy)
        room = await rooms.get("feed")
        outbound = runner_of(room.sessions[slow_id]).outbound
        most_queued = sent = 0
        chats: list[str] = []
        with trio.fail_after(60):
            while rooms.statistics().dropped_oldest < 500:
                room.broadcast(Tick(sent, PAD))
                sent += 1
                # A tick makes room: whatever is queued, at most the bound is left.
                most_queued = max(most_queued, len(outbound))
                if sent % 100 == 0:
                    chats.append(f"chat {sent}")  # its own policy: disconnect, never dropped
                    room.broadcast(Said(chats[-1]))
                await trio.sleep(0.001)  # sync-ok: the tick
            stats = rooms.statistics()
            room.broadcast(Said("end"))
            ticks: list[int] = []
            said: list[str] = []
            while (message := await _message(slow)) != {"type": "said", "text": "end"}:
                if message["type"] == "tick":
                    ticks.append(message["n"])
                else:
                    said.append(message["text"])
    assert most_queued <= config.outbound_max_messages
    assert said == chats
    assert ticks == sorted(ticks)
    assert ticks[-10:] == list(range(sent - 10, sent))  # the newest are kept
    assert len(ticks) + stats.dropped_oldest == sent
    assert stats.by_room["feed"].dropped_oldest == stats.dropped_oldest
    assert [m for m in healthy if isinstance(m, Tick)] == [Tick(n, PAD) for n in range(sent)]
    assert [m.text for m in healthy if isinstance(m, Said)] == chats
    assert 1008 not in stats.closes


async def test_a_resumed_client_counts_what_its_policy_skipped_and_is_replayed_nothing_twice() -> (
    None
):
    """Coalesced frames are told to a counting client ($skipped): its resume replays none again."""
    fast = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=20)
    async with _serve(RoomsConfig()) as (rooms, port):
        url = f"ws://127.0.0.1:{port}/rooms/feed/websocket"
        async with open_room_client(url, SERVER, CLIENT, reconnect=fast) as client:
            assert isinstance(await client.receive(), TagsSet)  # from here it stalls
            room = await rooms.get("feed")
            (session,) = room.sessions.values()
            big = "y" * 8000
            sent = 0
            with trio.fail_after(60):
                while rooms.statistics().coalesced < 100:
                    room.broadcast(Update(f"k{sent % KEYS}", sent, big))
                    sent += 1
                    await trio.sleep(0.001)  # sync-ok: the tick
                room.broadcast(Said("last"))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(session.close, 1012, "restart")
                    received = 0
                    while (message := await client.receive()) != Said("last"):
                        assert isinstance(message, Update)
                        received += 1
                event = await client.events.receive()
            assert isinstance(event, Reconnected)
            assert (event.resumed, event.replayed) == (True, 0)
            assert received + rooms.statistics().coalesced == sent
            assert isinstance(await client.receive(), TagsSet)  # on_connect, on the resume too
            room.broadcast(Said("live"))
            assert await client.receive() == Said("live")


def test_policies_are_checked_where_they_are_declared_and_given() -> None:
    """A bad delivery attribute, an unknown key field, or a key with no hash are TypeErrors."""
    import attrs

    from trio_rooms import ConnectRequest, Message, Session

    with pytest.raises(TypeError, match=r"Bad\.delivery must be Disconnect\(\), DropOldest\(\)"):

        @attrs.frozen
        class Bad(Message):
            delivery = "drop_oldest"  # pyright: ignore[reportAssignmentType] - the point
            n: int

    @attrs.frozen
    class Moved(Message):
        delivery = Coalesce("entity")
        entity_id: str

    with pytest.raises(TypeError, match=r"Moved\.delivery coalesces by 'entity'"):

        class _MovedSession(Session[None, Moved, Moved]):  # pyright: ignore[reportUnusedClass] - raises
            async def create_data(self, request: ConnectRequest) -> None:
                return None

            async def on_message(self, message: Moved) -> None:
                pass

    with pytest.raises(TypeError, match="names or a key, not both"):
        Coalesce("a", key="b")
    with pytest.raises(TypeError, match="attribute names"):
        Coalesce("")
    with pytest.raises(TypeError, match="is not hashable"):
        Coalesce(key=(1, [2])).key_of(Moved("e"))
    assert DropOldest() == DropOldest()
