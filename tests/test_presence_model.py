"""Presence under any sequence of joins, updates, leaves and closes: every view agrees."""

from __future__ import annotations

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trio_rooms
from trio_rooms import RoomsConfig

from .presence_app import PresenceRoom, State, connect

ACTORS = 3
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.integers(0, ACTORS - 1), st.sampled_from(["ann", "bob"])),
        st.tuples(st.just("update"), st.integers(0, ACTORS - 1), st.booleans()),
        st.tuples(st.just("leave"), st.integers(0, ACTORS - 1), st.none()),
        st.tuples(st.just("reconnect"), st.integers(0, ACTORS - 1), st.none()),
    ),
    max_size=25,
)


def _server_state(room: PresenceRoom) -> State:
    """The room's view, as a client would hold it."""
    return {
        key: [(e.ref, {"name": e.meta.name, "typing": e.meta.typing}) for e in entries]
        for key, entries in room.presence.items()
    }


Command = tuple[str, object, trio.Event]


async def _actor(port: int, index: int, commands: trio.MemoryReceiveChannel[Command]) -> None:
    """One client: runs the commands it gets in order; "reconnect" closes and opens again."""
    while True:
        async with connect(port) as peer:
            async for op, argument, done in commands:
                match op:
                    case "join":
                        await peer.join(str(argument), f"device-{index}")
                    case "update":
                        await peer.update(f"device-{index}", bool(argument))
                    case "leave":
                        await peer.leave()
                    case _:
                        break  # reconnect: this connection closes, a new one opens
                done.set()
            else:
                return
        done.set()


async def _settled(rooms: trio_rooms.Rooms[PresenceRoom], closes: int) -> None:
    """Wait until ``closes`` sessions have ended and every actor's connection is in."""
    await rooms.wait_statistics(
        lambda stats: sum(stats.closes.values()) == closes and stats.sessions == ACTORS + 1
    )


async def _run(ops: list[tuple[str, int, object]]) -> None:
    config = RoomsConfig(rate_limit=None)
    async with (
        trio_rooms.open_rooms(PresenceRoom, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        async with connect(port) as early:
            await early.watch()
            senders: list[trio.MemorySendChannel[Command]] = []
            for index in range(ACTORS):
                send, receive = trio.open_memory_channel[Command](0)
                senders.append(send)
                nursery.start_soon(_actor, port, index, receive)
            await rooms.wait_statistics(lambda stats: stats.sessions == ACTORS + 1)
            closes = 0
            for op, index, argument in ops:
                done = trio.Event()
                await senders[index].send((op, argument, done))
                await done.wait()
                closes += op == "reconnect"
                await _settled(rooms, closes)
            room = await rooms.get("lobby")
            await early.leave()  # a no-op that returns after every diff sent before it
            async with connect(port) as late:
                await late.watch()
                assert early.state == late.state == _server_state(room)
            for send in senders:
                await send.aclose()
        nursery.cancel_scope.cancel()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_a_late_subscriber_sees_what_the_diffs_built_after_any_changes(
    ops: list[tuple[str, int, object]],
) -> None:
    """After any changes, the state a late subscriber gets equals the diffs' and the room's."""
    trio.run(_run, ops)
