"""Typed presence on one node: joins, updates and leaves as diffs, over real sockets."""

from __future__ import annotations

import pytest
import trio

import trio_rooms
from trio_rooms import RoomsConfig

from .presence_app import Device, PresenceRoom, connect, devices

Served = tuple[trio_rooms.Rooms[PresenceRoom], int]


@pytest.fixture
async def served(nursery: trio.Nursery) -> Served:
    return await _serve(nursery, RoomsConfig(rate_limit=None))


@pytest.fixture
def port(served: Served) -> int:
    return served[1]


async def _serve(nursery: trio.Nursery, config: RoomsConfig) -> Served:
    rooms: trio_rooms.Rooms[PresenceRoom] = await nursery.start(_open_rooms, config)
    bound: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    return rooms, bound


async def _open_rooms(
    config: RoomsConfig, *, task_status: trio.TaskStatus[trio_rooms.Rooms[PresenceRoom]]
) -> None:
    async with trio_rooms.open_rooms(PresenceRoom, config=config) as rooms:
        task_status.started(rooms)
        await trio.sleep_forever()


async def test_two_devices_of_one_user_are_two_presences_of_one_key(port: int) -> None:
    """A user on two devices is one key with two metas, and closing one leaves the other."""
    async with connect(port, query="watch") as watcher:
        await watcher.watch()
        async with connect(port) as phone:
            async with connect(port) as laptop:
                await phone.join("ann", "phone")
                await laptop.join("ann", "laptop")
                state = await watcher.until(lambda s: len(s.get("ann", [])) == 2)
                assert devices(state) == {"ann": ["phone", "laptop"]}
            state = await watcher.until(lambda s: len(s.get("ann", [])) == 1)
            assert devices(state) == {"ann": ["phone"]}
        await watcher.until(lambda s: s == {})


async def test_every_subscriber_sees_the_same_diffs_in_the_same_order(port: int) -> None:
    """Joins, updates and leaves reach every subscriber as the same diffs, in one order."""
    async with connect(port) as first, connect(port) as second, connect(port) as actor:
        await first.watch()
        await second.watch()
        await actor.join("bob", "web")
        await actor.update("web", True)
        await actor.join("carol", "phone")  # a second join replaces the first, in one diff
        await actor.leave()
        for peer in (first, second):
            while len(peer.diffs) < 4:
                await peer.next()
        assert first.diffs == second.diffs
        kinds = [(sorted(diff.joins), sorted(diff.leaves)) for diff in first.diffs]
        assert kinds == [(["bob"], []), (["bob"], ["bob"]), (["carol"], ["bob"]), ([], ["carol"])]
        update = first.diffs[1]
        assert update.joins["bob"][0].meta == {"name": "web", "typing": True}
        assert update.leaves["bob"][0].ref == first.diffs[0].joins["bob"][0].ref
        assert update.joins["bob"][0].ref != update.leaves["bob"][0].ref
        assert first.state == second.state == {}


async def test_a_late_subscriber_gets_what_the_others_built_from_diffs(port: int) -> None:
    """The state a new subscriber gets equals what an earlier one built from the diffs."""
    async with connect(port) as early, connect(port) as a, connect(port) as b:
        await early.watch()
        await a.join("ann", "phone")
        await b.join("bob", "web")
        await a.update("phone", True)
        await early.until(lambda s: len(early.diffs) == 3)
        async with connect(port) as late:
            await late.watch()
            assert late.state == early.state
            assert late.state is not None
            assert len(late.state) == 2


async def test_changes_of_one_turn_reach_subscribers_as_one_diff(port: int) -> None:
    """A join and 51 updates in one event are one diff of the last metadata; a join and
    leave in one event send nothing; the state stays what the diffs build."""
    async with connect(port) as watcher, connect(port) as actor:
        await watcher.watch()
        await actor.burst("ann", 51)
        await watcher.leave()  # a no-op handled after that event: its Done comes after
        assert len(watcher.diffs) == 1
        (diff,) = watcher.diffs
        assert diff.leaves == {}
        assert [meta.meta for meta in diff.joins["ann"]] == [{"name": "burst", "typing": True}]
        await actor.burst("bob", 3, leave=True)  # replaces ann's, then leaves: one change
        await watcher.until(lambda s: s == {})
        assert len(watcher.diffs) == 2
        assert (sorted(watcher.diffs[1].joins), sorted(watcher.diffs[1].leaves)) == ([], ["ann"])
        await actor.burst("carol", 2, leave=True)  # joins and leaves: nobody is told
        await watcher.watch()  # a request handled after that event: its Done comes later
        assert len(watcher.diffs) == 2
        assert watcher.state == {}


async def test_room_presence_is_readable_and_typed_on_the_server(served: Served) -> None:
    """``room.presence`` maps each key to its entries, with the metadata as its class."""
    rooms, port = served
    async with connect(port) as phone, connect(port) as laptop:
        await phone.join("ann", "phone")
        await laptop.join("ann", "laptop")
        await laptop.update("laptop", True)
        room = await rooms.get("lobby")
        presence = room.presence
        assert list(presence) == ["ann"]
        assert [entry.meta for entry in presence["ann"]] == [
            Device("phone"),
            Device("laptop", typing=True),
        ]
        session_id = presence["ann"][1].session_id
        assert presence.entry_of(session_id) == presence["ann"][1]
        assert presence.count() == 2
    assert len(room.presence) == 0  # left on close


async def test_presence_limits_refuse_with_a_clear_error(nursery: trio.Nursery) -> None:
    """Past max_presences_per_room or max_presence_size a join is refused and nothing changes."""
    config = RoomsConfig(rate_limit=None, max_presences_per_room=2, max_presence_size=40)
    _, port = await _serve(nursery, config)
    async with connect(port) as a, connect(port) as b, connect(port) as c:
        assert (await a.join("ann", "phone")).error is None
        assert (await b.join("bob", "phone")).error is None
        refused = await c.join("carol", "phone")
        assert refused.error is not None
        assert "max_presences_per_room is 2" in refused.error
        assert (await a.join("ann", "laptop")).error is None  # a replacement is not one more
        too_big = await a.update("x" * 40, False)
        assert too_big.error is not None
        assert "RoomsConfig.max_presence_size (40)" in too_big.error
        await c.watch()
        assert c.state is not None
        assert devices(c.state) == {"ann": ["laptop"], "bob": ["phone"]}


async def test_update_without_a_join_is_an_error(port: int) -> None:
    """update_presence before join_presence raises RuntimeError, naming the fix."""
    async with connect(port) as peer:
        done = await peer.update("web", True)
        assert done.error is not None
        assert "call join_presence() first" in done.error


class _Twice(PresenceRoom):
    other = trio_rooms.Presence(Device)


async def test_presence_takes_an_attrs_class_once_per_room() -> None:
    """Presence(meta) refuses a class that is not attrs; a room declaring two fails to start."""
    with pytest.raises(TypeError, match="attrs class"):
        trio_rooms.Presence(int)
    async with trio_rooms.open_rooms(_Twice) as rooms:
        with pytest.raises(TypeError, match="declares presence more than once: other, presence"):
            await rooms.get("twice")


def test_presence_limits_have_safe_defaults() -> None:
    """Every room holds at most 10,000 presences of at most 4 KiB each by default."""
    config = RoomsConfig()
    assert (config.max_presences_per_room, config.max_presence_size) == (10_000, 4096)
    with pytest.raises(ValueError, match="max_presence_size"):
        RoomsConfig(max_presence_size=0)
