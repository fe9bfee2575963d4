"""Session tags over real sockets: tagged broadcasts on one node and across two on Redis."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

import trio_rooms
from trio_rooms import Backplane, Rooms, RoomsConfig
from trio_rooms.backplane.redis import RedisBackplane
from trio_rooms.client import RoomClient, open_room_client

from .redis_server import RedisServer
from .tags_app import (
    CLIENT,
    SERVER,
    Announce,
    ClientMsg,
    Refused,
    Said,
    ServerMsg,
    SetTags,
    TagRoom,
    TagsSet,
)

Client = RoomClient[ServerMsg, ClientMsg]


@asynccontextmanager
async def _serve(
    config: RoomsConfig | None = None, backplane: Backplane | None = None
) -> AsyncGenerator[tuple[Rooms[TagRoom], int]]:
    async with (
        trio_rooms.open_rooms(TagRoom, config=config, backplane=backplane) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def _join(stack: AsyncExitStack, port: int, tags: str = "") -> tuple[Client, str]:
    """A client of room ``r`` tagged ``tags`` (comma-separated), once its tags are set."""
    url = f"ws://127.0.0.1:{port}/rooms/r/websocket?tags={tags}"
    client = await stack.enter_async_context(open_room_client(url, SERVER, CLIENT, resume=False))
    ack = await client.receive()
    assert isinstance(ack, TagsSet)
    assert ack.tags == sorted(filter(None, tags.split(",")))
    return client, ack.session_id


async def _said_until(client: Client, last: str) -> list[str]:
    """The texts ``client`` is told up to and including ``last``."""
    texts: list[str] = []
    with trio.fail_after(10):
        while not texts or texts[-1] != last:
            message = await client.receive()
            if isinstance(message, Said):
                texts.append(message.text)
    return texts


async def test_a_tagged_broadcast_reaches_exactly_the_sessions_with_any_of_its_tags() -> None:
    """Red, blue, red+blue and untagged clients each get exactly the broadcasts for their tags."""
    async with _serve() as (rooms, port), AsyncExitStack() as stack:
        red, red_id = await _join(stack, port, "red")
        blue, _ = await _join(stack, port, "blue")
        both, both_id = await _join(stack, port, "red,blue")
        plain, _ = await _join(stack, port)
        room = await rooms.get("r")
        assert {s.id for s in room.sessions_tagged("red")} == {red_id, both_id}
        room.broadcast(Said("red"), tags={"red"})
        room.broadcast(Said("red or blue"), tags=["red", "blue"])
        room.broadcast(Said("red but both"), tags={"red"}, exclude=[both_id])
        room.broadcast(Said("green"), tags={"green"})
        room.broadcast(Said("nobody"), tags=())
        room.broadcast(Said("all"))
        assert await _said_until(red, "all") == ["red", "red or blue", "red but both", "all"]
        assert await _said_until(blue, "all") == ["red or blue", "all"]
        assert await _said_until(both, "all") == ["red", "red or blue", "all"]
        assert await _said_until(plain, "all") == ["all"]


async def test_changed_tags_move_a_session_in_the_index_and_a_closed_one_leaves_it() -> None:
    """A session that swaps red for blue gets blue's broadcasts only; once gone, none."""
    async with _serve() as (rooms, port), AsyncExitStack() as stack:
        moving, moving_id = await _join(stack, port, "red")
        watcher, _ = await _join(stack, port, "red,blue")
        moving.send(SetTags(["blue"]))
        assert await moving.receive() == TagsSet(moving_id, ["blue"])
        room = await rooms.get("r")
        room.broadcast(Said("red"), tags={"red"})
        room.broadcast(Said("blue"), tags={"blue"})
        room.broadcast(Said("end"))
        assert await _said_until(moving, "end") == ["blue", "end"]
        assert await _said_until(watcher, "end") == ["red", "blue", "end"]
        await moving.aclose()
        with trio.fail_after(10):
            await rooms.wait_statistics(lambda stats: stats.sessions == 1)
        assert [s.id for s in room.sessions_tagged("blue")] != [moving_id]
        assert len(room.sessions_tagged("blue")) == 1


async def test_session_broadcast_takes_tags_and_an_exclude_list() -> None:
    """A session's broadcast to red but one red session and itself reaches the third red one."""
    async with _serve() as (_, port), AsyncExitStack() as stack:
        sender, _ = await _join(stack, port, "red")
        left_out, left_out_id = await _join(stack, port, "red")
        reached, _ = await _join(stack, port, "red")
        other, _ = await _join(stack, port, "blue")
        sender.send(Announce("psst", tags=["red"], exclude=[left_out_id], exclude_self=True))
        sender.send(Announce("end"))
        assert await _said_until(reached, "end") == ["psst", "end"]
        for client in (sender, left_out, other):
            assert await _said_until(client, "end") == ["end"]


@pytest.mark.parametrize("config", [RoomsConfig(max_tags_per_session=2, max_tag_length=8)])
async def test_tags_past_their_bounds_are_refused_with_a_clear_error_and_change_nothing(
    config: RoomsConfig,
) -> None:
    """Three tags, a nine-character one or an empty one raise ValueError; the tags stay as set."""
    async with _serve(config) as (rooms, port), AsyncExitStack() as stack:
        client, session_id = await _join(stack, port, "a,b")
        client.send(SetTags(["a", "b", "c"]))
        assert await client.receive() == Refused(
            "a session has at most 2 tags (RoomsConfig.max_tags_per_session), got 3"
        )
        client.send(SetTags(["x" * 9]))
        refused = await client.receive()
        assert isinstance(refused, Refused)
        assert "at most 8 characters (RoomsConfig.max_tag_length), got 9" in refused.reason
        client.send(SetTags([""]))
        assert await client.receive() == Refused("a tag must not be empty")
        client.send(SetTags(["b", "c"]))
        assert await client.receive() == TagsSet(session_id, ["b", "c"])
        room = await rooms.get("r")
        (session,) = room.sessions.values()
        with pytest.raises(ValueError, match="at most 2 tags"):
            session.tags.add("d")
        with pytest.raises(TypeError, match="a tag must be a str, got int"):
            session.tags.add(1)  # pyright: ignore[reportArgumentType] - the point
        with pytest.raises(TypeError, match="a collection of tags, not a str"):
            room.broadcast(Said("x"), tags="b")
        assert sorted(session.tags) == ["b", "c"]
        assert [s.id for s in room.sessions_tagged("c")] == [session_id]
        assert room.sessions_tagged("a") == []


@asynccontextmanager
async def _two_nodes(url: str) -> AsyncGenerator[tuple[tuple[Rooms[TagRoom], int], ...]]:
    async with (
        _serve(backplane=RedisBackplane(url)) as node_a,
        _serve(backplane=RedisBackplane(url)) as node_b,
    ):
        yield node_a, node_b


async def _until_heard(room: TagRoom, *clients: Client) -> None:
    """Broadcast probes from ``room`` until every client (on the other node) heard one.

    A node subscribes to the room when its first client joins; this waits until that
    subscription carries messages.
    """
    heard = 0
    all_heard = trio.Event()

    async def listen(client: Client) -> None:
        nonlocal heard
        while not isinstance(message := await client.receive(), Said) or not (
            message.text.startswith("probe")
        ):
            pass
        heard += 1
        if heard == len(clients):
            all_heard.set()

    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(listen, client)
        with trio.fail_after(20):
            n = 0
            while not all_heard.is_set():
                room.broadcast(Said(f"probe {n}"))
                n += 1
                with trio.move_on_after(0.05):  # the next probe, unless this one was heard
                    await all_heard.wait()


async def _said_but_probes(client: Client, last: str) -> list[str]:
    return [text for text in await _said_until(client, last) if not text.startswith("probe")]


async def test_a_tagged_broadcast_reaches_exactly_the_tagged_sessions_of_both_nodes(
    redis_server: RedisServer,
) -> None:
    """From node A, red reaches the red clients of A and B, and exclude holds on B."""
    async with (
        _two_nodes(redis_server.url) as ((rooms_a, port_a), (_, port_b)),
        AsyncExitStack() as stack,
    ):
        red_a, _ = await _join(stack, port_a, "red")
        plain_a, _ = await _join(stack, port_a)
        red_b, _ = await _join(stack, port_b, "red")
        blue_b, _ = await _join(stack, port_b, "blue")
        red_b2, red_b2_id = await _join(stack, port_b, "red")
        room_a = await rooms_a.get("r")
        await _until_heard(room_a, red_b, blue_b, red_b2)
        room_a.broadcast(Said("red"), tags={"red"})
        room_a.broadcast(Said("blue"), tags={"blue"})
        room_a.broadcast(Said("red but b2"), tags={"red"}, exclude=[red_b2_id])
        room_a.broadcast(Said("end"))
        assert await _said_but_probes(red_a, "end") == ["red", "red but b2", "end"]
        assert await _said_but_probes(plain_a, "end") == ["end"]
        assert await _said_but_probes(red_b, "end") == ["red", "red but b2", "end"]
        assert await _said_but_probes(blue_b, "end") == ["blue", "end"]
        assert await _said_but_probes(red_b2, "end") == ["red", "end"]
