"""The core's side of the backplane: two nodes in one process on an in-memory bus.

The bus is a faithful small `Backplane` (publish reaches every subscribed node,
itself included, as Redis pub/sub does), so these tests pin down what the core does
with it: publish once per broadcast, subscribe while a room has local sessions,
filter its own broadcasts, apply ``exclude`` on every node, list members.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import msgpack
import pytest
import trio

import trio_rooms
from trio_rooms import Backplane, BackplaneStatistics, Rooms
from trio_rooms._core.backplane import Delivery, Envelope
from trio_rooms._core.rooms import registry_of
from trio_rooms.testing import connect

from .chat_app import Chat, ChatRoom, SendChat, Shout, UserJoined
from .recording_storage import RecordingStorage


class _Bus:
    """The broker: channels, their subscribers, and room membership."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[_Node]] = defaultdict(set)
        self.members: dict[str, set[str]] = defaultdict(set)
        self.published: list[tuple[str, bytes]] = []


class _Node:
    """One node's backplane on the bus."""

    def __init__(self, bus: _Bus) -> None:
        self.bus = bus
        self.deliver_to: Delivery | None = None
        self.received = 0
        self.published = 0

    async def run(self, node: Delivery, *, task_status: trio.TaskStatus[None]) -> None:
        self.deliver_to = node
        task_status.started()
        await trio.sleep_forever()

    def publish(self, room: str, payload: bytes) -> None:
        self.published += 1
        self.bus.published.append((room, payload))
        for subscriber in tuple(self.bus.subscribers[room]):
            assert subscriber.deliver_to is not None
            subscriber.received += 1
            subscriber.deliver_to.deliver(room, payload)

    def subscribe(self, room: str) -> None:
        self.bus.subscribers[room].add(self)

    def unsubscribe(self, room: str) -> None:
        self.bus.subscribers[room].discard(self)

    def join(self, room: str, session_id: str) -> None:
        self.bus.members[room].add(session_id)

    def leave(self, room: str, session_id: str) -> None:
        self.bus.members[room].discard(session_id)

    async def members(self, room: str) -> Sequence[str]:
        await trio.lowlevel.checkpoint()
        return list(self.bus.members[room])

    def statistics(self) -> BackplaneStatistics:
        return BackplaneStatistics(
            degraded=False,
            published=self.published,
            received=self.received,
            dropped=0,
            reconnects=0,
        )


@pytest.fixture
def bus() -> _Bus:
    return _Bus()


@pytest.fixture
async def node_a(bus: _Bus) -> AsyncGenerator[Rooms[ChatRoom]]:
    async with trio_rooms.open_rooms(ChatRoom, backplane=_Node(bus)) as rooms:
        yield rooms


@pytest.fixture
async def node_b(bus: _Bus) -> AsyncGenerator[Rooms[ChatRoom]]:
    async with trio_rooms.open_rooms(ChatRoom, backplane=_Node(bus)) as rooms:
        yield rooms


async def test_a_broadcast_reaches_the_sessions_of_the_other_node(
    node_a: Rooms[ChatRoom], node_b: Rooms[ChatRoom], bus: _Bus
) -> None:
    """Each node delivers once: its own publish comes back and is ignored."""
    async with connect(node_b, "lobby", query="name=bob") as bob:
        assert await bob.receive() == UserJoined(user_id=_only(node_b, "lobby"), name="bob")
        async with connect(node_a, "lobby", query="name=ann") as ann:
            joined = await bob.receive()  # ann's join, broadcast on node A
            assert isinstance(joined, UserJoined)
            assert joined.name == "ann"
            assert await ann.receive() == joined  # delivered locally, exactly once
            ann.send(SendChat(text="hi"))
            chat = Chat(user_id=joined.user_id, name="ann", text="hi")
            assert await bob.receive() == chat
            assert await ann.receive() == chat
            ann.send(SendChat(text="again"))  # nothing was delivered twice before it
            assert (await bob.receive()) == Chat(user_id=joined.user_id, name="ann", text="again")
            assert (await ann.receive()) == Chat(user_id=joined.user_id, name="ann", text="again")
    stats = node_a.statistics().backplane
    assert stats is not None
    assert stats.published >= 3


async def test_exclude_self_applies_on_every_node(
    node_a: Rooms[ChatRoom], node_b: Rooms[ChatRoom]
) -> None:
    async with (
        connect(node_a, "lobby", query="name=ann") as ann,
        connect(node_b, "lobby", query="name=bob") as bob,
        connect(node_a, "lobby", query="name=cid") as cid,
    ):
        for client in (ann, bob, cid):
            while not (isinstance(m := await client.receive(), UserJoined) and m.name == "cid"):
                pass
        ann.send(Shout(text="not to me"))
        ann.send(SendChat(text="marker"))
        for client in (bob, cid):
            shout = Chat(user_id=ann_id(node_a), name="ann", text="not to me")
            assert await client.receive() == shout
        first = await ann.receive()
        assert isinstance(first, Chat)
        assert first.text == "marker"  # the shout never reached its sender


async def test_a_node_subscribes_while_it_has_sessions_in_the_room(
    node_a: Rooms[ChatRoom], node_b: Rooms[ChatRoom], bus: _Bus
) -> None:
    assert not bus.subscribers["lobby"]
    async with connect(node_a, "lobby") as ann:
        await ann.receive()
        assert len(bus.subscribers["lobby"]) == 1
        async with connect(node_a, "lobby") as again:
            await again.receive()
            assert len(bus.subscribers["lobby"]) == 1
        await ann.receive()  # the second one's leave
        assert len(bus.subscribers["lobby"]) == 1
    assert not bus.subscribers["lobby"]  # connect() returns once the session has ended


def test_the_bus_is_a_backplane(bus: _Bus) -> None:
    backplane: Backplane = _Node(bus)  # pyright checks the Protocol here
    assert backplane.statistics().published == 0


async def test_members_lists_the_sessions_of_every_node(
    node_a: Rooms[ChatRoom], node_b: Rooms[ChatRoom]
) -> None:
    async with connect(node_a, "lobby") as ann, connect(node_b, "lobby") as bob:
        await ann.receive()
        await bob.receive()
        room_a = await node_a.get("lobby")
        room_b = await node_b.get("lobby")
        everyone = sorted([*room_a.sessions, *room_b.sessions])
        assert len(everyone) == 2
        assert list(await room_a.members()) == everyone
        assert list(await room_b.members()) == everyone


async def test_members_without_a_backplane_lists_the_local_sessions() -> None:
    async with trio_rooms.open_rooms(ChatRoom) as rooms, connect(rooms, "lobby") as client:
        await client.receive()
        room = await rooms.get("lobby")
        assert list(await room.members()) == list(room.sessions)
        assert rooms.statistics().backplane is None


async def test_a_payload_that_is_not_an_envelope_is_dropped_with_a_warning(
    node_a: Rooms[ChatRoom], node_b: Rooms[ChatRoom], bus: _Bus, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(node_b, "lobby", query="name=bob") as bob:
        await bob.receive()
        publisher = _Node(bus)
        publisher.publish("lobby", b"\x00garbage")
        no_excluded: list[str] = []
        publisher.publish("lobby", msgpack.packb(["other-node", no_excluded, b"\x81\xa1x\x01"]))
        async with connect(node_a, "lobby", query="name=ann") as ann:
            joined = await bob.receive()
            assert isinstance(joined, UserJoined)
            await ann.receive()
    warnings = [r.getMessage() for r in caplog.records if r.name == "trio_rooms"]
    assert len([w for w in warnings if "dropped a broadcast" in w]) == 2


def _only(rooms: Rooms[ChatRoom], name: str) -> str:
    slot = registry_of(rooms)._slots[name]  # pyright: ignore[reportPrivateUsage] - a live room, no await
    assert slot.room is not None
    (session_id,) = slot.room.sessions
    return session_id


def ann_id(rooms: Rooms[ChatRoom]) -> str:
    slot = registry_of(rooms)._slots["lobby"]  # pyright: ignore[reportPrivateUsage] - a live room, no await
    assert slot.room is not None
    (ann,) = [s for s in slot.room.sessions.values() if s.data.name == "ann"]
    return ann.id


async def test_a_broadcast_after_a_write_is_published_once_the_write_is_durable(
    bus: _Bus, node_b: Rooms[ChatRoom]
) -> None:
    """The output gate holds the other nodes' copy too: no publish while the commit is held."""
    storage = RecordingStorage(trio_rooms.MemoryStorage())
    async with trio_rooms.open_rooms(ChatRoom, storage=storage, backplane=_Node(bus)) as node_a:
        room = await node_a.get("lobby")
        await room.storage.flush()
        release = storage.hold_next_commit()
        async with room.exclusive():
            await room.storage.put("topic", "gates")
            room.broadcast(Chat(user_id="a", name="ann", text="topic is gates"))
            room.broadcast(Chat(user_id="a", name="ann", text="and a second"))
        await storage.arrived.wait()
        assert bus.published == []
        release.set()
        await room.storage.flush()
        texts = [Envelope.unpack(payload).message for _, payload in bus.published]
        assert len(texts) == 2
        assert b"topic is gates" in texts[0]
        assert b"and a second" in texts[1]


async def test_nodes_sharing_one_storage_through_a_backplane_all_keep_writing(
    bus: _Bus, tmp_path: Path
) -> None:
    """With a backplane each node runs a copy of the room on purpose: no writer token is
    taken, and the copy started first still writes after the other started."""
    path = tmp_path / "rooms.db"
    storage_a, storage_b = trio_rooms.SqliteStorage(path), trio_rooms.SqliteStorage(path)
    async with (
        trio_rooms.open_rooms(ChatRoom, storage=storage_a, backplane=_Node(bus)) as node_a,
        trio_rooms.open_rooms(ChatRoom, storage=storage_b, backplane=_Node(bus)) as node_b,
    ):
        room_a = await node_a.get("lobby")
        room_b = await node_b.get("lobby")
        for room, value in ((room_a, "a"), (room_b, "b"), (room_a, "a again")):
            await room.storage.put("k", value)
            await room.storage.flush()
        assert await storage_b.get("lobby", "k") == b'"a again"'
