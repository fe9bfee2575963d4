"""The Python client's typed presence, against a real server over real sockets."""

from __future__ import annotations

import socket

import attrs
import pytest
import trio

import trio_rooms
from trio_rooms import DecodeError, RoomsConfig, testing
from trio_rooms.client import (
    ClientEvent,
    PresenceChanged,
    PresenceMeta,
    Reconnected,
    ReconnectPolicy,
    RoomClient,
    open_room_client,
)

from ..presence_app import (
    ClientMsg,
    Device,
    Done,
    Join,
    Leave,
    PresenceRoom,
    PresenceSession,
    Update,
)

Client = RoomClient[Done, ClientMsg]
Watcher = RoomClient[Done, ClientMsg, Device]


@pytest.fixture
async def port(nursery: trio.Nursery) -> int:
    rooms: trio_rooms.Rooms[PresenceRoom] = await nursery.start(_open_rooms)
    bound: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    return bound


async def _open_rooms(*, task_status: trio.TaskStatus[trio_rooms.Rooms[PresenceRoom]]) -> None:
    async with trio_rooms.open_rooms(PresenceRoom, config=RoomsConfig(rate_limit=None)) as rooms:
        task_status.started(rooms)
        await trio.sleep_forever()


def _url(port: int, query: str = "") -> str:
    return f"ws://127.0.0.1:{port}/rooms/lobby/websocket" + (f"?{query}" if query else "")


async def _do(client: Client, message: ClientMsg) -> None:
    """Send ``message`` and wait for the room's ``Done`` of it."""
    client.send(message)
    async for done in client:
        if done.seq == message.seq:
            assert done.error is None
            return


async def _changed(watcher: Watcher) -> PresenceChanged[Device]:
    """The watcher's next presence event (skipping reconnects)."""
    with trio.fail_after(10):
        async for event in watcher.events:
            if isinstance(event, PresenceChanged):
                return event
    raise AssertionError("the events ended")


def _names(metas: tuple[PresenceMeta[Device], ...]) -> list[tuple[str, bool]]:
    return [(meta.meta.name, meta.meta.typing) for meta in metas]


async def test_joins_updates_and_leaves_reach_every_watcher_in_order_typed(port: int) -> None:
    """Two watchers get the state, then each join, update and leave as one typed event, in order."""
    async with (
        open_room_client(_url(port, "watch"), PresenceSession, presence=Device) as first,
        open_room_client(_url(port, "watch"), PresenceSession, presence=Device) as second,
        open_room_client(_url(port), PresenceSession) as actor,
    ):
        for watcher in (first, second):
            initial = await _changed(watcher)
            assert initial == PresenceChanged({}, {}, reset=True)
        await _do(actor, Join(1, "bob", "web"))
        await _do(actor, Update(2, "web", True))
        await _do(actor, Leave(3))
        seen: list[list[PresenceChanged[Device]]] = []
        for watcher in (first, second):
            seen.append([await _changed(watcher) for _ in range(3)])
        assert seen[0] == seen[1]
        joined, updated, left = seen[0]
        assert (dict(joined.leaves), _names(joined.joins["bob"])) == ({}, [("web", False)])
        assert _names(updated.leaves["bob"]) == [("web", False)]
        assert _names(updated.joins["bob"]) == [("web", True)]
        assert updated.leaves["bob"][0].ref == joined.joins["bob"][0].ref
        assert updated.joins["bob"][0].ref != joined.joins["bob"][0].ref
        assert left.leaves["bob"] == updated.joins["bob"]
        assert not left.joins
        assert not any(event.reset for event in seen[0])
        assert dict(first.presence) == dict(second.presence) == {}


async def test_a_late_watcher_holds_what_the_diffs_built(port: int) -> None:
    """After joins of two devices of one key and an update, a new watcher's presence equals
    the one an earlier watcher built from the events."""
    async with (
        open_room_client(_url(port, "watch"), PresenceSession, presence=Device) as early,
        open_room_client(_url(port), PresenceSession) as phone,
        open_room_client(_url(port), PresenceSession) as laptop,
    ):
        await _changed(early)
        await _do(phone, Join(1, "ann", "phone"))
        await _do(laptop, Join(1, "ann", "laptop"))
        await _do(phone, Update(2, "phone", True))
        while len(early.presence.get("ann", ())) < 2 or not early.presence["ann"][-1].meta.typing:
            await _changed(early)
        assert _names(early.presence["ann"]) == [("laptop", False), ("phone", True)]
        assert early.presence.count() == 2
        async with open_room_client(_url(port, "watch"), PresenceSession, presence=Device) as late:
            reset = await _changed(late)
            assert reset.reset
            assert dict(reset.joins) == dict(early.presence)
            assert dict(late.presence) == dict(early.presence)


async def test_a_reconnect_resets_presence_to_the_new_state(port: int) -> None:
    """After a drop, the new connection's state replaces the held one, and the reset event
    says exactly what changed while the client was away."""
    streams: list[trio.SocketStream] = []
    allow_reconnect = trio.Event()

    async def open_stream() -> trio.abc.Stream:
        if streams:
            await allow_reconnect.wait()
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        streams.append(stream)
        return stream

    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.01)
    async with (
        open_room_client(_url(port), PresenceSession) as bob,
        open_room_client(_url(port), PresenceSession) as carol,
    ):
        await _do(bob, Join(1, "bob", "web"))
        async with open_room_client(
            _url(port, "watch"),
            PresenceSession,
            presence=Device,
            open_stream=open_stream,
            reconnect=policy,
        ) as watcher:
            first = await _changed(watcher)
            assert list(first.joins) == ["bob"]
            assert first.reset
            bob_meta = watcher.presence["bob"]
            streams[0].socket.shutdown(socket.SHUT_RDWR)  # a network drop: no close frame
            await watcher.wait_disconnected()
            await _do(bob, Leave(2))
            await _do(carol, Join(1, "carol", "phone"))
            assert dict(watcher.presence) == {"bob": bob_meta}  # held while away
            allow_reconnect.set()
            events: list[ClientEvent[Device]] = []
            while not events or not isinstance(events[-1], PresenceChanged):
                with trio.fail_after(10):
                    events.append(await watcher.events.receive())
            assert isinstance(events[0], Reconnected)
            assert events[0].resumed
            reset = events[-1]
            assert reset.reset
            assert dict(reset.leaves) == {"bob": bob_meta}
            assert _names(reset.joins["carol"]) == [("phone", False)]
            assert list(watcher.presence) == ["carol"]


@attrs.frozen
class Badge:
    """Not the room's metadata class: the server's metas lack ``level``."""

    name: str
    level: int


async def test_metas_of_another_class_go_to_on_invalid_and_are_not_applied(port: int) -> None:
    """A presence frame whose metadata does not decode to the client's class is reported to
    on_invalid, naming the key and field, and changes nothing."""
    invalid: list[DecodeError] = []
    all_in = trio.Event()

    def on_invalid(error: DecodeError) -> None:
        invalid.append(error)
        if len(invalid) == 3:  # ann's join and leave, bob's join
            all_in.set()

    async with (
        open_room_client(_url(port), PresenceSession) as actor,
        open_room_client(
            _url(port, "watch"), PresenceSession, presence=Badge, on_invalid=on_invalid
        ) as watcher,
    ):
        await _do(actor, Join(1, "ann", "web"))
        await _do(actor, Leave(2))
        await _do(actor, Join(3, "bob", "web"))
        with trio.fail_after(10):
            await all_in.wait()
        first = await watcher.events.receive()
        assert first == PresenceChanged({}, {}, reset=True)
        assert "presence of 'ann'" in str(invalid[0])
        assert "level" in str(invalid[0])
        assert invalid[0].frame is not None
        assert dict(watcher.presence) == {}


async def test_a_client_without_presence_skips_the_frames(port: int) -> None:
    """Opened without presence=, a watching client gets its messages, no presence events,
    and an empty presence."""
    invalid: list[DecodeError] = []
    async with (
        open_room_client(
            _url(port, "watch"), PresenceSession, on_invalid=invalid.append
        ) as watcher,
        open_room_client(_url(port), PresenceSession) as actor,
    ):
        await _do(actor, Join(1, "ann", "web"))
        await _do(watcher, Join(1, "bob", "web"))  # its Done comes after the diffs of ann
        assert dict(watcher.presence) == {}
        assert invalid == []  # skipped, not invalid
        with pytest.raises(trio.WouldBlock):
            watcher.events.receive_nowait()


async def test_the_test_client_holds_typed_presence_too() -> None:
    """``trio_rooms.testing.open_test_client(..., presence=Meta)`` is the client with presence."""
    config = RoomsConfig(rate_limit=None)
    async with (
        trio_rooms.open_rooms(PresenceRoom, config=config) as rooms,
        testing.open_test_client(rooms, "lobby", query="watch", presence=Device) as watcher,
        testing.open_test_client(rooms, "lobby") as actor,
    ):
        assert await _changed(watcher) == PresenceChanged({}, {}, reset=True)
        await _do(actor, Join(1, "ann", "phone"))
        joined = await _changed(watcher)
        assert _names(joined.joins["ann"]) == [("phone", False)]
        assert _names(watcher.presence["ann"]) == [("phone", False)]
