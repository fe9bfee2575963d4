"""A relayed client's socket is watched by its node's server, not waited on by a task.

Two nodes of `tests.owner_app` in this process on one real redis-server; node ``a``
owns room ``game``, node ``b`` relays its clients to ``a``, reading each client's
messages in its server's watcher (`Watching`) and handing them to the relay at once.
"""

from __future__ import annotations

import pytest
import trio

import trio_rooms

from .owner_app import serve_owner_rooms
from .redis_server import RedisServer
from .sockets import PING, PONG, TEXT, RawClient, client_frame, open_raw

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
PATIENCE = 20.0
ADD = b'{"type": "add"}'


async def _local(client: RawClient) -> int:
    local = (await client.receive_json())["local"]
    assert isinstance(local, int)
    return local


class _ReaderSteps(trio.abc.Instrument):
    """Counts the steps of the relays' reader tasks (`_Pump._read`) while installed."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("_Pump._read"):
            self.steps += 1


async def test_a_relayed_clients_messages_and_pings_take_no_step_of_its_reader(
    redis_server: RedisServer,
) -> None:
    """Twenty round trips and a ping of a relayed client, one after another: each reply
    in order, and the relay's reader task never runs (its node's watcher reads them)."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a") as (rooms_a, port_a),
            serve_owner_rooms(url, "b") as (_, port_b),
            open_raw(port_a, GAME) as on_a,
            open_raw(port_b, GAME) as on_b,
        ):
            assert (await on_a.receive_json())["node"] == "a"
            await rooms_a.get("game")
            assert (await on_b.receive_json())["node"] == "a"
            await on_b.send(client_frame(TEXT, ADD))
            assert await _local(on_b) == 1
            steps = _ReaderSteps()
            trio.lowlevel.add_instrument(steps)
            try:
                seen: list[int] = []
                for _ in range(20):
                    await on_b.send(client_frame(TEXT, ADD))
                    seen.append(await _local(on_b))
                await on_b.send(client_frame(PING, b"there?"))
                assert await on_b.receive_frame() == (True, PONG, b"there?")
            finally:
                trio.lowlevel.remove_instrument(steps)
    assert seen == list(range(2, 22))
    assert steps.steps == 0


async def test_a_watched_relayed_client_that_stops_answering_pings_is_dropped(
    redis_server: RedisServer,
) -> None:
    """A relayed client that never answers its node's pings is dropped by that node's
    keepalive while its socket is watched: its session ends on the owner (1006)."""
    url = redis_server.url
    config = trio_rooms.RoomsConfig(
        rate_limit=None, ping_interval=0.2, ping_timeout=0.2, alarm_retry_delay=0.2
    )
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a") as (rooms_a, port_a),
            serve_owner_rooms(url, "b", config) as (rooms_b, port_b),
            open_raw(port_a, GAME) as on_a,
        ):
            assert (await on_a.receive_json())["node"] == "a"
            room = await rooms_a.get("game")
            async with open_raw(port_b, GAME) as on_b:
                assert (await on_b.receive_json())["node"] == "a"
                await on_b.send(client_frame(TEXT, ADD))
                assert await _local(on_b) == 1
                frames = await on_b.receive_until_eof()  # pings it leaves unanswered
                assert {frame.opcode for frame in frames} == {PING}
            await rooms_b.wait_statistics(lambda stats: stats.relayed_sessions == 0)
            await rooms_a.wait_statistics(lambda stats: sum(stats.closes.values()) == 1)
            assert room.closes == [1006]


async def test_relayed_clients_that_come_and_go_are_each_read_as_their_own(
    redis_server: RedisServer,
) -> None:
    """Relayed clients opened and closed in waves (their sockets' numbers reused by the
    next wave's): every client's messages reach the owner as its own, in order."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_owner_rooms(url, "a") as (rooms_a, port_a),
            serve_owner_rooms(url, "b") as (rooms_b, port_b),
            open_raw(port_a, GAME) as on_a,
        ):
            assert (await on_a.receive_json())["node"] == "a"
            await rooms_a.get("game")
            total = 0
            for wave in range(3):
                async with (
                    open_raw(port_b, GAME) as first,
                    open_raw(port_b, GAME) as second,
                    open_raw(port_b, GAME) as third,
                ):
                    clients = [first, second, third]
                    for client in clients:
                        assert (await client.receive_json())["node"] == "a"
                    for client in clients:
                        await client.send(client_frame(TEXT, ADD) * 3)
                    for client in clients:
                        counts = [await _local(client) for _ in range(3)]
                        assert counts == sorted(counts), (wave, counts)
                    total += 9
                    if wave == 1:
                        first.reset()  # its node sees a reset, not a close
                await rooms_b.wait_statistics(lambda stats: stats.relayed_sessions == 0)
            await on_a.send(client_frame(TEXT, ADD))
            assert await _local(on_a) == total + 1
