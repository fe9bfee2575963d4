"""Red team 5: a resume racing the close of the session it resumes, across nodes.

(A second test holds the resume's claim on the owner, its token spent, while the
relayed client leaves or writes: the window the first test's timing rarely hits.)

Three nodes of `tests.attack_app` in this process on one real redis-server; ``a`` owns
room ``game``. A relayed client of ``b`` leaves (a close frame, or a TCP reset) at the
moment a resume of its token arrives on the owner, on ``b`` itself, or on ``c``: in
every order the two can reach the owner, the token resumes the session exactly once,
the leaving connection's ``on_close`` runs once, and the token the resume was given
resumes the session again later (the leaving connection's close wrote nothing over it).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import orjson
import pytest
import trio

import trio_rooms
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .attack_app import LEASE_TTL, AttackRoom, attack_config, serve_attack_rooms
from .redis_server import RedisServer
from .sockets import CLOSE, TEXT, client_frame, close_payload, connect_socket
from .test_cluster_attacks import Client, joined, settled
from .test_token_races import HeldClaims

pytestmark = pytest.mark.slow

PATIENCE = 30.0
ROUNDS = 4


async def _leave(client: Client, how: str) -> None:
    if how == "close-frame":
        await client.raw.send(client_frame(CLOSE, close_payload(1000)))
    else:
        client.raw.reset()


async def _resume(stream: trio.SocketStream, token: str, resumers: list[Client]) -> None:
    resumers.append(await Client.handshake(stream, f"resume={token}"))


@pytest.mark.parametrize("how", ["close-frame", "reset"])
@pytest.mark.parametrize("resumer_on", ["owner", "same-node", "third-node"])
async def test_a_resume_racing_its_relayed_sessions_close_resumes_it_once(
    redis_server: RedisServer, how: str, resumer_on: str
) -> None:
    """A relayed client that leaves (close frame or reset) as a resume of its token
    arrives on another node, or its own: the resume gets the session back with its data
    each time, ``on_resume`` runs once per resume, ``on_close`` once per connection that
    held the session, and the new token resumes the session once more afterwards."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a") as (rooms_a, port_a),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
            serve_attack_rooms(url, "c") as (rooms_c, port_c),
        ):
            port = {"owner": port_a, "same-node": port_b, "third-node": port_c}[resumer_on]
            owner = await Client.join(port_a)
            victims: dict[str, int | None] = {}
            async with joined([owner]):
                room = await rooms_a.get("game")
                for _ in range(ROUNDS):
                    victim = await Client.join(port_b, "resume=")
                    assert victim.welcome["node"] == "a"
                    await victim.send({"type": "add"})
                    assert (await victim.receive())["type"] == "counted"
                    stream = await connect_socket(port)
                    resumers: list[Client] = []
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_resume, stream, victim.token, resumers)
                        nursery.start_soon(_leave, victim, how)
                    (resumer,) = resumers
                    async with joined([victim, resumer]):
                        assert (resumer.resumed, resumer.id) == (True, victim.id), resumer.session
                        # Its data came back: the add the victim made.
                        await resumer.send({"type": "add"})
                        counted = await resumer.receive()
                        assert counted["adds"] == 2, counted
                        if how == "close-frame":
                            victims[victim.id] = await victim.raw.close_code()
                    back = await Client.join(port_b, f"resume={resumer.token}")
                    async with joined([back]):
                        assert (back.resumed, back.id) == (True, victim.id), back.session
                        await back.send({"type": "add"})
                        assert (await back.receive())["adds"] == 3
                    victims.setdefault(victim.id, None)
                await rooms_a.wait_statistics(lambda stats: stats.sessions == 1)
                await settled(rooms_b, rooms_c)
                assert set(room.sessions) == {owner.id}
                assert dict(room.resumes) == dict.fromkeys(victims, 2)
                for victim_id, seen in victims.items():
                    closes = room.closes[victim_id]
                    # The leaving connection's (its own code, or the takeover's), then
                    # the resumer's and the one after it (1006: both dropped their TCP).
                    assert len(closes) == 3, closes
                    assert closes[1:] == [1006, 1006], closes
                    own = 1000 if how == "close-frame" else 1006
                    assert closes[0] in (own, 4001), closes
                    if seen is not None:
                        # The client sees the code its session ended with.
                        assert seen == closes[0], (seen, closes)
            for rooms in (rooms_a, rooms_b, rooms_c):
                assert rooms.statistics().errors == 0


@asynccontextmanager
async def _held_owner(
    url: str,
) -> AsyncGenerator[tuple[trio_rooms.Rooms[AttackRoom], HeldClaims, int]]:
    """Node ``a`` whose storage can hold a claim once spent: its rooms, storage, port."""
    storage = HeldClaims(RedisStorage(url))
    cluster = RedisCluster(url, node_id="a", lease_ttl=LEASE_TTL, timeout=0.3)
    async with (
        trio_rooms.open_rooms(
            functools.partial(AttackRoom, node="a"),
            config=attack_config(),
            storage=storage,
            cluster=cluster,
        ) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, storage, port
        nursery.cancel_scope.cancel()


async def _until_close(client: Client) -> tuple[list[str], int | None]:
    """The type of every message up to the server's close, and its code."""
    kinds: list[str] = []
    while (frame := await client.raw.receive_frame()) is not None:
        if frame.opcode == CLOSE:
            return kinds, frame.close_code
        if frame.opcode == TEXT:
            kinds.append(str(_loads(frame.payload.decode()).get("type")))
    return kinds, None


def _loads(text: str) -> dict[str, object]:
    message: dict[str, object] = orjson.loads(text)
    return message


@pytest.mark.parametrize("how", ["close-frame", "reset", "add"])
@pytest.mark.parametrize("victim_on", ["owner", "relaying"])
async def test_a_session_that_acts_while_its_token_is_spent_is_resumed_once(
    redis_server: RedisServer, how: str, victim_on: str
) -> None:
    """The owner holds a resume (through a third node) right after it spent the token;
    meanwhile the client, relayed or the owner's own, closes, resets or sends an add:
    the resume still gets the session with the data stored before, the add is neither
    acknowledged nor kept (the client is closed with 4001), and ``on_close`` runs once
    for the client."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            _held_owner(url) as (rooms_a, storage, port_a),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
            serve_attack_rooms(url, "c") as (rooms_c, port_c),
        ):
            owner = await Client.join(port_a)
            victim = await Client.join(port_a if victim_on == "owner" else port_b, "resume=")
            async with joined([owner, victim]):
                assert victim.welcome["node"] == "a"
                await victim.send({"type": "add"})
                assert (await victim.receive())["adds"] == 1
                # The victim's node, and its connections once the victim has left it.
                victims_node, left = (rooms_a, 1) if victim_on == "owner" else (rooms_b, 0)
                storage.hold_next_claim()
                stream = await connect_socket(port_c)
                resumers: list[Client] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_resume, stream, victim.token, resumers)
                    await storage.arrived.wait()
                    seen: tuple[list[str], int | None] | None = None
                    if how == "add":
                        await victim.send({"type": "add"})
                        seen = await _until_close(victim)
                    else:
                        await _leave(victim, how)
                        await victims_node.wait_statistics(lambda stats: stats.connections == left)
                        if how == "close-frame":
                            seen = await _until_close(victim)
                    storage.release.set()
                (resumer,) = resumers
                async with joined([resumer]):
                    assert (resumer.resumed, resumer.id) == (True, victim.id), resumer.session
                    await resumer.send({"type": "add"})
                    counted = await resumer.receive()
                    assert counted["adds"] == 2, counted
                if how == "add":
                    assert seen == ([], 4001), seen
                elif how == "close-frame":
                    assert seen is not None
                    assert seen[1] in (1000, 4001), seen
            await rooms_a.wait_statistics(lambda stats: stats.sessions == 0)
            await settled(rooms_b, rooms_c)
            room = await rooms_a.get("game")
            assert dict(room.resumes) == {victim.id: 1}
            # The resumer's (1006: it dropped its TCP) and the client's, in either order:
            # a session that sent its close waits for the answer before ``on_close``.
            closes = list(room.closes[victim.id])
            assert len(closes) == 2, closes
            closes.remove(1006)
            own = {"close-frame": 1000, "reset": 1006, "add": 4001}[how]
            assert closes[0] in (own, 4001), room.closes[victim.id]
            # The add's update() raised SessionClosedError in its handler: counted as a
            # hook's error on the owner (logged at INFO only), as for a local client.
            errors = (rooms_a.statistics().errors, rooms_b.statistics().errors)
            assert errors == (1 if how == "add" else 0, 0), errors
            assert rooms_c.statistics().errors == 0
