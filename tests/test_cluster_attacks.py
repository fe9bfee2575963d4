"""The single-owner cluster under attack: several nodes on one real redis-server.

Races on resume tokens across nodes, relayed clients reset (TCP RST) at every point of
their connection, bursts past the credit window and the inbound limits, read-modify-write
from clients of every node, nodes killed and Redis connections killed mid-commit, and
route requests relayed under a burst. The nodes are `tests.attack_app`: in this process
where the owner's room and every node's statistics are looked at, in a subprocess where
a node is killed. Clients are raw WebSocket clients, which see every frame and close.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import cast

import coredis
import orjson
import pytest
import trio

import trio_rooms

from .attack_app import (
    LEASE_TTL,
    AttackRoom,
    attack_config,
    open_attack_node,
    serve_attack_rooms,
)
from .redis_server import RedisServer
from .redis_witness import first_process_told_gone
from .sockets import (
    CLOSE,
    TEXT,
    RawClient,
    client_frame,
    connect_socket,
    handshake_request,
    raw_handshake,
)
from .test_routes import http

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
#: Bounds every test: a few lease TTLs.
PATIENCE = 25.0

Message = dict[str, object]
Nodes = trio_rooms.Rooms[AttackRoom]


class Client:
    """A raw client of room ``game``: its socket, its ``$session`` and its welcome."""

    def __init__(self, raw: RawClient, session: Message | None, welcome: Message) -> None:
        self.raw = raw
        self.session = session
        self.welcome = welcome

    @classmethod
    async def join(cls, port: int, query: str = "") -> Client:
        return await cls.handshake(await connect_socket(port), query)

    @classmethod
    async def handshake(cls, stream: trio.SocketStream, query: str = "") -> Client:
        raw = await raw_handshake(stream, f"{GAME}?{query}")
        session = None
        if "resume=" in query:
            session = cast("Message", _loads(await raw.receive_text())["$session"])
        welcome = _loads(await raw.receive_text())
        assert welcome["type"] == "welcome", welcome
        return cls(raw, session, welcome)

    @property
    def id(self) -> str:
        return cast("str", self.welcome["session"])

    @property
    def token(self) -> str:
        assert self.session is not None
        return cast("str", self.session["token"])

    @property
    def resumed(self) -> bool:
        assert self.session is not None
        return cast("bool", self.session["resumed"])

    async def send(self, message: Message) -> None:
        await self.raw.send_text(orjson.dumps(message).decode())

    async def receive(self) -> Message:
        return _loads(await self.raw.receive_text())

    async def tally(self) -> Message:
        """The room's `Tally`, as its owner sees it (other frames before it skipped)."""
        await self.send({"type": "ask"})
        while (message := await self.receive())["type"] != "tally":
            pass
        return message

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.raw.stream)


def _loads(text: str) -> Message:
    return cast("Message", orjson.loads(text))


@asynccontextmanager
async def joined(clients: list[Client]) -> AsyncGenerator[list[Client]]:
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


async def _join_at_once(ports: list[int], query: str) -> list[Client]:
    """One client per port, the TCP connections made first, then every handshake at once."""
    streams = [await connect_socket(port) for port in ports]
    clients: list[Client | None] = [None] * len(ports)

    async def one(index: int) -> None:
        clients[index] = await Client.handshake(streams[index], query)

    try:
        async with trio.open_nursery() as nursery:
            for index in range(len(ports)):
                nursery.start_soon(one, index)
    except BaseException:
        for stream in streams:
            await trio.aclose_forcefully(stream)
        raise
    return [client for client in clients if client is not None]


async def settled(*nodes: Nodes, connections: int = 0, relayed: int = 0) -> None:
    """Wait until each node has ``connections`` connections, ``relayed`` of them relayed."""
    for rooms in nodes:
        try:
            with trio.fail_after(10):
                await rooms.wait_statistics(
                    lambda stats: (
                        (stats.connections, stats.relayed_sessions) == (connections, relayed)
                    )
                )
        except trio.TooSlowError:
            raise AssertionError(rooms.statistics()) from None


# ----------------------------------------------------------------------- token races


@pytest.mark.parametrize("racing", ["owner-and-relayed", "two-relayed"])
async def test_one_token_raced_through_two_nodes_resumes_exactly_one_session(
    redis_server: RedisServer, racing: str
) -> None:
    """A token presented at once on two nodes (the owner and a relaying one, or two
    relaying ones) while its session is still relayed resumes exactly one connection:
    the other gets a fresh session, the old relayed one 4001; ``on_resume`` runs once,
    and ``on_close`` once per connection that held the session."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a") as (rooms_a, port_a),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
            serve_attack_rooms(url, "c") as (rooms_c, port_c),
        ):
            owner = await Client.join(port_a)
            assert owner.welcome["node"] == "a"
            victim = await Client.join(port_b, "resume=")
            assert victim.welcome["node"] == "a"
            ports = [port_a, port_b] if racing == "owner-and-relayed" else [port_b, port_c]
            racers = await _join_at_once(ports * 2, f"resume={victim.token}")
            async with joined([owner, victim, *racers]):
                winners = [racer for racer in racers if racer.resumed]
                assert len(winners) == 1, [racer.session for racer in racers]
                (winner,) = winners
                assert winner.id == victim.id
                fresh = {racer.id for racer in racers if racer is not winner}
                assert len(fresh) == len(racers) - 1
                assert victim.id not in fresh
                assert await victim.raw.close_code() == 4001
                tally = await winner.tally()
                assert tally["sessions"] == sorted({owner.id, winner.id, *fresh})
                assert tally["members"] == tally["sessions"]
                assert tally["resumes"] == {victim.id: 1}
                room = await rooms_a.get("game")
                assert set(room.sessions) == {owner.id, winner.id, *fresh}
            await settled(rooms_b, rooms_c)
            await rooms_a.wait_statistics(lambda stats: stats.sessions == 0)
            assert dict(room.resumes) == {victim.id: 1}
            assert sorted(room.closes) == sorted({victim.id, owner.id, *fresh})
            # Once per connection that held the session: the taken-over one, the winner's.
            assert sorted(room.closes.pop(victim.id)) == [1006, 4001]
            assert all(codes == [1006] for codes in room.closes.values()), room.closes


# ------------------------------------------------------------------------ resets


def _tasks() -> list[str]:
    """The name of every task of this trio run but coredis's (its pools grow with use), sorted."""
    names: list[str] = []
    root = trio.lowlevel.current_root_task()
    assert root is not None
    todo = [root]
    while todo:
        task = todo.pop()
        names.append(task.name)
        todo.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return sorted(name for name in names if not name.startswith("coredis."))


async def _reset_in_handshake(port: int, rooms: Nodes) -> None:
    stream = await connect_socket(port)
    await stream.send_all(handshake_request(GAME + "?resume="))
    await rooms.wait_statistics(lambda stats: stats.relayed_sessions == 1)
    RawClient(stream).reset()


async def _reset_once_open(port: int, rooms: Nodes) -> None:
    client = await Client.join(port, "resume=")
    client.raw.reset()


async def _reset_with_frames_both_ways(port: int, rooms: Nodes) -> None:
    client = await Client.join(port, "resume=")
    adds = b"".join(client_frame(TEXT, b'{"type": "add"}') for _ in range(100))
    await client.raw.send(adds + client_frame(TEXT, b'{"type": "flood", "count": 50, "size": 900}'))
    assert (await client.receive())["type"] == "counted"
    client.raw.reset()


async def _reset_in_the_reply(port: int, rooms: Nodes) -> None:
    client = await Client.join(port, "resume=")
    await client.send({"type": "flood", "count": 40, "size": 20_000})
    assert (await client.receive())["type"] == "blob"
    client.raw.reset()


RESETS = {
    "in-handshake": _reset_in_handshake,
    "once-open": _reset_once_open,
    "frames-both-ways": _reset_with_frames_both_ways,
    "in-the-reply": _reset_in_the_reply,
}


async def _keys(redis: coredis.Redis[bytes]) -> set[bytes]:
    """Every key in Redis but the resumable sessions' records, which must expire."""
    keys: set[bytes] = set()
    for key in await redis.keys("*"):
        if key.startswith(b"trio_rooms:session:"):
            assert await redis.pttl(key) > 0, key
        else:
            keys.add(key)
    return keys


@pytest.mark.parametrize("where", list(RESETS))
async def test_a_relayed_client_reset_anywhere_leaves_nothing_behind(
    redis_server: RedisServer, where: str
) -> None:
    """Relayed clients whose sockets are reset (TCP RST) at one point of their connection,
    again and again, each end once on the owner (1006), leave its ``sessions`` and
    ``members()`` with only the clients that stay, both nodes' counters at rest, and
    no task and no Redis key behind (but the resumable records, which expire)."""
    url = redis_server.url
    attack = RESETS[where]
    with trio.fail_after(PATIENCE):
        async with (
            coredis.Redis.from_url(url) as redis,
            serve_attack_rooms(url, "a") as (rooms_a, port_a),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
        ):
            owner = await Client.join(port_a)
            stays = await Client.join(port_b)
            async with joined([owner, stays]):
                assert stays.welcome["node"] == "a"
                # One reset round first: what a reset leaves the first time (a task, a key)
                # is not counted against the rounds that follow.
                await attack(port_b, rooms_b)
                await settled(rooms_b, connections=1, relayed=1)
                await rooms_a.wait_statistics(lambda stats: stats.sessions == 2)
                await stays.tally()  # its reader and the members' connection are up
                await trio.testing.wait_all_tasks_blocked(0.05)
                tasks, keys = _tasks(), await _keys(redis)
                rounds = 8
                for _ in range(rounds):
                    await attack(port_b, rooms_b)
                await settled(rooms_b, connections=1, relayed=1)
                stats_a = await rooms_a.wait_statistics(lambda stats: stats.sessions == 2)
                tally = await stays.tally()
                assert tally["sessions"] == sorted([owner.id, stays.id])
                assert tally["members"] == tally["sessions"]
                assert tally["resumes"] == {}  # none was moved: they were gone
                closes = cast("dict[str, list[int]]", tally["closes"])
                assert all(codes == [1006] for codes in closes.values()), closes
                # Reset in its handshake, a client may be gone before its OPEN leaves.
                admitted = rounds + 1 if where != "in-handshake" else len(closes)
                assert len(closes) == admitted
                assert (stats_a.connections, stats_a.errors) == (1, 0)
                assert stats_a.closes == ({1006: admitted} if admitted else {})
                stats_b = rooms_b.statistics()
                assert (stats_b.rooms, stats_b.relayed_rooms, stats_b.errors) == (0, 1, 0)
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert _tasks() == tasks
                assert await _keys(redis) == keys


# ------------------------------------------------------------------------ bursts


def _echoes(count: int, start: int = 0) -> bytes:
    return b"".join(
        client_frame(TEXT, b'{"type": "echo", "n": %d}' % n) for n in range(start, start + count)
    )


#: What each burst sends, in one write: over the credit window (32) many times, then
#: past one inbound limit.
BURSTS = {
    "rate-limit": _echoes(400),
    "invalid-frames": _echoes(200) + client_frame(TEXT, b'{"type": "nope"}') * 12 + _echoes(5, 200),
    "too-big": _echoes(200) + client_frame(TEXT, b"x" * 70_000) + _echoes(5, 200),
}


async def _burst(port: int, limit: str) -> tuple[list[object], int | None]:
    """Send ``BURSTS[limit]`` at once: the ``n`` of each echo and error, in order, and the close."""
    client = await Client.join(port)
    try:
        await client.raw.send(BURSTS[limit])
        seen: list[object] = []
        while (frame := await client.raw.receive_frame()) is not None:
            if frame.opcode == CLOSE:
                return seen, frame.close_code
            message = _loads(frame.payload.decode())
            seen.append(message.get("n", "error" if "error" in message else message))
        return seen, None
    finally:
        await client.aclose()


@pytest.mark.parametrize("limit", list(BURSTS))
async def test_a_relayed_clients_burst_past_a_limit_ends_as_a_local_clients(
    redis_server: RedisServer, limit: str
) -> None:
    """A burst far past the credit window and then past an inbound limit (the rate limit,
    invalid frames in a row, the message size) is answered in order and closed with the
    same code whether its client is on the owner or relayed, each handled message once."""
    url = redis_server.url
    config = attack_config(max_message_size=65_536)
    if limit == "rate-limit":
        config = attack_config(rate_limit=20.0, rate_limit_burst=100, rate_limit_excess=50)
    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a", config) as (rooms_a, port_a),
            serve_attack_rooms(url, "b", config) as (rooms_b, port_b),
        ):
            owner = await Client.join(port_a)
            async with joined([owner]):
                local, local_code = await _burst(port_a, limit)
                relayed, relayed_code = await _burst(port_b, limit)
                await settled(rooms_b)
                stats = await rooms_a.wait_statistics(lambda stats: stats.sessions == 1)
    expected_code = {"rate-limit": 1008, "invalid-frames": 1008, "too-big": 1009}[limit]
    assert (local_code, relayed_code) == (expected_code, expected_code)
    for seen in (local, relayed):
        numbers = [n for n in seen if isinstance(n, int)]
        assert numbers == list(range(len(numbers))), seen  # in order, none twice, no gap
    if limit == "rate-limit":
        # The bucket refills while the burst is read: a message or two more may pass.
        for seen in (local, relayed):
            assert 100 <= len([n for n in seen if isinstance(n, int)]) <= 110, seen
            assert seen.count("error") == 50
    else:
        # The tenth invalid frame in a row closes the session instead of being answered.
        expected = [*range(200), *(["error"] * 9 if limit != "too-big" else [])]
        assert (local, relayed) == (expected, expected)
    assert stats.closes == {expected_code: 2}


# ----------------------------------------------------------- read-modify-write, routes


async def test_read_modify_writes_from_every_node_lose_no_update(redis_server: RedisServer) -> None:
    """Clients of three nodes (two each) and route requests through every node add to the
    room's stored count at once, each a get then a put in a transaction: every add gets
    its own count, and the count ends at the number of adds."""
    url = redis_server.url
    adds, posts = 40, 15
    counts: list[int] = []

    async def client_adds(port: int) -> None:
        client = await Client.join(port)
        async with joined([client]):
            await client.raw.send(
                b"".join(client_frame(TEXT, b'{"type": "add"}') for _ in range(adds))
            )
            for n in range(1, adds + 1):
                counted = await client.receive()
                assert counted["adds"] == n
                counts.append(cast("int", counted["count"]))

    async def route_adds(port: int) -> None:
        for _ in range(posts):
            answer = await http(port, "POST", "/rooms/game/add")
            assert answer.status == 200, answer.body
            counts.append(answer.json()["count"])

    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a") as (rooms_a, port_a),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
            serve_attack_rooms(url, "c") as (rooms_c, port_c),
        ):
            first = await Client.join(port_a)
            async with joined([first]), trio.open_nursery() as nursery:
                for port in (port_a, port_b, port_c):
                    nursery.start_soon(client_adds, port)
                    nursery.start_soon(client_adds, port)
                    nursery.start_soon(route_adds, port)
            total = 3 * (2 * adds + posts)
            assert sorted(counts) == list(range(1, total + 1))
            answer = await http(port_c, "GET", "/rooms/game/count")
            assert answer.json() == {"count": total}
            await settled(rooms_b, rooms_c)
            assert rooms_a.statistics().errors == 0


async def _reset_request(port: int, whole: bool) -> None:
    """A POST /add through ``port`` reset (RST) mid-body, or once it was sent whole."""
    stream = await connect_socket(port)
    body = b"{}" if whole else b"{"
    head = b"POST /rooms/game/add HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    await stream.send_all(head + b"content-length: 2\r\n\r\n" + body)
    RawClient(stream).reset()


async def test_relayed_routes_under_a_burst_and_resets_answer_each_request_once(
    redis_server: RedisServer,
) -> None:
    """Route requests relayed to the owner at once, with others reset mid-body or before
    their answer, are each answered once with their own count; a reset one is applied
    once or not at all, and the relaying node ends with no connection."""
    url = redis_server.url
    posts, resets = 40, 10
    counts: list[int] = []

    async def post() -> None:
        answer = await http(port_b, "POST", "/rooms/game/add")
        assert answer.status == 200, answer.body
        counts.append(answer.json()["count"])

    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a") as (rooms_a, _),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
        ):
            await rooms_a.get("game")  # a owns it: every request through b is relayed
            async with trio.open_nursery() as nursery:
                for n in range(posts):
                    nursery.start_soon(post)
                    if n < resets:
                        nursery.start_soon(_reset_request, port_b, n % 2 == 0)
            await settled(rooms_b)
            count = (await http(port_b, "GET", "/rooms/game/count")).json()["count"]
            assert len(counts) == posts
            assert len(set(counts)) == posts
            assert posts <= count <= posts + resets // 2
            assert set(counts) <= set(range(1, count + 1))
            # Those that were applied took the counts no answered request got.
            assert rooms_a.statistics().errors == 0


# ------------------------------------------------------------------------ idle


async def test_a_relayed_client_silent_past_park_after_is_served_on(
    redis_server: RedisServer,
) -> None:
    """A relayed client silent for longer than ``park_after`` (a local one would park)
    keeps its session: its next message is answered, and no error is logged."""
    url = redis_server.url
    config = attack_config(park_after=0.1)
    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a", config) as (rooms_a, port_a),
            serve_attack_rooms(url, "b", config) as (rooms_b, port_b),
        ):
            owner = await Client.join(port_a)
            relayed = await Client.join(port_b)
            async with joined([owner, relayed]):
                assert relayed.welcome["node"] == "a"
                # A witness in a room of b's own, silent since after the relayed client
                # connected, parks twice: b's keepalive asked the relayed one too.
                witness = await raw_handshake(await connect_socket(port_b), "/rooms/mine/websocket")
                async with joined([Client(witness, None, _loads(await witness.receive_text()))]):
                    await rooms_b.wait_statistics(lambda stats: stats.parks == 1)
                    await witness.send_text('{"type": "echo", "n": 0}')
                    assert _loads(await witness.receive_text()) == {"type": "echoed", "n": 0}
                    await rooms_b.wait_statistics(lambda stats: stats.parks == 2)
                    await relayed.send({"type": "echo", "n": 1})
                    assert await relayed.receive() == {"type": "echoed", "n": 1}
                    assert (rooms_a.statistics().errors, rooms_b.statistics().errors) == (0, 0)
                    await settled(rooms_b, connections=2, relayed=1)


# ----------------------------------------------------------------------- restarts

#: How long the owner may take to end the sessions of a client's node that died: a
#: peer silent for the lease TTL is found at the next beat, a third of it later.
DEAD_BOUND = LEASE_TTL * 4 / 3


async def test_the_relays_of_a_node_killed_and_started_again_under_its_id_end_on_the_owner(
    redis_server: RedisServer,
) -> None:
    """A relaying node killed (SIGKILL) and at once started again under the same node id,
    which relays a new client to the owner at once: the dead process's sessions still
    end on the owner (1006), once it can tell that process gone, and its clients resume
    through the new one."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with serve_attack_rooms(url, "a") as (rooms_a, port_a):
            owner = await Client.join(port_a)
            async with joined([owner]):
                async with open_attack_node(url, "b") as (process_b, port_b):
                    ghosts = [await Client.join(port_b, "resume=") for _ in range(2)]
                    await rooms_a.wait_statistics(lambda stats: stats.sessions == 3)
                    process_b.kill()
                    await process_b.wait()
                for ghost in ghosts:
                    await ghost.aclose()
                async with serve_attack_rooms(url, "b") as (rooms_b, port_b):
                    new = await Client.join(port_b)  # its OPEN is heard from "b" at once
                    async with joined([new]):
                        await rooms_a.wait_statistics(
                            lambda stats: (stats.sessions, stats.closes) == (2, {1006: 2})
                        )
                        # Ended once the dead process could be told gone: by a BEAT of
                        # the new one, or b's silence for the TTL (by Redis's clock); how
                        # soon (DEAD_BOUND at most) is a benchmark's figure.
                        assert await first_process_told_gone(url, "a", "b", LEASE_TTL)
                        room = await rooms_a.get("game")
                        assert set(room.sessions) == {owner.id, new.id}
                        assert (await new.tally())["members"] == sorted([owner.id, new.id])
                        back = [
                            await Client.join(port_b, f"resume={ghost.token}") for ghost in ghosts
                        ]
                        async with joined(back):
                            assert [client.id for client in back] == [g.id for g in ghosts]
                            assert all(client.resumed for client in back)
                            await settled(rooms_b, connections=3, relayed=3)


async def counted(client: Client) -> int:
    """The count of the next `Counted`; a move's ``$session`` on the way gives the new token."""
    while True:
        message = await client.receive()
        if "$session" in message:
            client.session = cast("Message", message["$session"])
        elif message.get("type") == "counted":
            return cast("int", message["count"])


async def test_commits_cut_by_client_kill_lose_no_acknowledged_add_and_apply_no_other_twice(
    redis_server: RedisServer,
) -> None:
    """Redis's CLIENT KILL of every node's connections (commits, relays, leases), again
    and again with an add in flight, while a relayed client adds on (resuming whenever
    its room restarts): every acknowledged add is stored, each count is acknowledged at
    most once, and an unacknowledged add is applied once or not at all."""
    url = redis_server.url
    kills, acknowledged = 6, list[int]()
    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a") as (_, port_a),
            serve_attack_rooms(url, "b") as (_, port_b),
        ):
            owner = await Client.join(port_a)
            async with joined([owner]):
                client = await Client.join(port_b, "resume=")
                for kill in range(kills):
                    try:
                        for _ in range(5):
                            await client.send({"type": "add"})
                            acknowledged.append(await counted(client))
                        await client.send({"type": "add"})  # in flight when its commit is cut
                        killed = redis_server.command(
                            "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
                        )
                        assert killed.startswith(b":"), killed
                        acknowledged.append(await counted(client))
                    except AssertionError:
                        # Closed (its room restarted on the failed write): resume and go on.
                        await client.aclose()
                        client = await Client.join(port_b, f"resume={client.token}")
                        assert client.resumed, kill
                await client.aclose()
            stored = (await http(port_a, "GET", "/rooms/game/count")).json()["count"]
    assert len(acknowledged) == len(set(acknowledged)), acknowledged
    assert acknowledged == sorted(acknowledged)
    assert max(acknowledged) <= stored <= len(acknowledged) + kills
