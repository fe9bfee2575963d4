"""RedisBackplane against a real redis-server: two nodes in one process, no mocks.

Each node is a `RedisBackplane` with a recording `Delivery`; the last tests run two
`open_rooms` blocks with WebSocket clients on both. A subscription is proved by
publishing a probe until it arrives; a state change by the backplane's own waits
(`RedisBackplane.wait_statistics`, `RedisBackplane.wait_members_written`); every wait
is bounded by ``fail_after``. Only membership expiry is polled: time is its event.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Literal, NamedTuple

import coredis
import pytest
import trio
from coredis import PureToken

import trio_rooms
from trio_rooms import BackplaneError, Rooms
from trio_rooms.backplane.redis import RedisBackplane

from .chat_app import Chat, ChatRoom, SendChat, Shout, UserJoined
from .peer import Peer, connect
from .redis_server import EVERY_URL, RedisServer
from .redis_server import redis_server as redis_server  # the fixture
from .redis_witness import scores_now

#: Short enough that the fault tests take a second or two, not a minute.
TIMEOUT = 0.5
HEALTH_CHECK_INTERVAL = 0.2


def fast(url: str) -> RedisBackplane:
    """A backplane that notices faults and reconnects within about a second."""
    return RedisBackplane(
        url, timeout=TIMEOUT, health_check_interval=HEALTH_CHECK_INTERVAL, max_backoff=0.5
    )


class Recorder:
    """A node: records what its backplane delivers, and wakes whoever waits on it."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, bytes]] = []
        self._changed = trio.Event()

    def deliver(self, room: str, payload: bytes) -> None:
        self.delivered.append((room, payload))
        self._changed.set()
        self._changed = trio.Event()

    def payloads(self, room: str) -> list[bytes]:
        """What arrived on ``room``, probes left out."""
        return [p for r, p in self.delivered if r == room and not p.startswith(b"probe:")]

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


@asynccontextmanager
async def running(backplane: RedisBackplane) -> AsyncGenerator[Recorder]:
    """Run ``backplane`` for a node; leaving cancels its ``run`` (no leave, no cleanup)."""
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(backplane.run, recorder)
        yield recorder
        nursery.cancel_scope.cancel()


async def until_delivered(
    sender: RedisBackplane, receiver: Recorder, room: str, *, within: float = 10
) -> None:
    """Publish probes on ``room`` until one reaches ``receiver``: both ends are connected."""
    probe = f"probe:{uuid.uuid4().hex}".encode()
    with trio.fail_after(within):
        while True:
            sender.publish(room, probe)
            with trio.move_on_after(0.05):
                await receiver.wait_until(lambda: (room, probe) in receiver.delivered)
                return


async def until_degraded(*backplanes: RedisBackplane, within: float) -> None:
    """Wait until every one of ``backplanes`` says it is degraded."""
    with trio.fail_after(within):
        for backplane in backplanes:
            await backplane.wait_statistics(lambda stats: stats.degraded)


async def until_reconnected(*backplanes: RedisBackplane, within: float = 5) -> None:
    """Wait until every one of ``backplanes`` has all its connections again after a loss."""
    with trio.fail_after(within):
        for backplane in backplanes:
            await backplane.wait_statistics(
                lambda stats: stats.reconnects >= 1 and not stats.degraded
            )


async def until_written(*backplanes: RedisBackplane, within: float = 5) -> None:
    """Wait until Redis has every membership change ``backplanes`` made so far."""
    with trio.fail_after(within):
        for backplane in backplanes:
            await backplane.wait_members_written()


async def poll_until_expired(
    backplane: RedisBackplane, room: str, remaining: set[str], *, within: float
) -> None:
    """Ask ``members`` until it lists only ``remaining``.

    The one poll of these tests, because expiry is time itself: an entry is a sorted-set
    member scored with its deadline, left out (and trimmed) by the next MEMBERS or
    REFRESH script run past it. Redis signals no member's deadline; a keyspace event
    would come only for the whole set's PEXPIREAT, and only if the server enables them.
    """
    with trio.fail_after(within):
        while set(await backplane.members(room)) != remaining:  # noqa: ASYNC110 - no event exists
            await trio.sleep(0.01)  # sync-ok: expiry is time itself (see above)


# ------------------------------------------------------------------------ broadcasts


@EVERY_URL
async def test_payloads_reach_the_subscribed_node_in_order(redis_server: RedisServer) -> None:
    """1,000 payloads from A reach B in order; a room B did not subscribe gets nothing."""
    a, b = RedisBackplane(redis_server.url), RedisBackplane(redis_server.url)
    async with running(a) as got_a, running(b) as got_b:
        a.subscribe("lobby")
        b.subscribe("lobby")
        await until_delivered(a, got_b, "lobby")
        for i in range(1000):
            a.publish("lobby", b"%d" % i)
            if i % 100 == 0:
                a.publish("elsewhere", b"not for b")
        with trio.fail_after(10):
            await got_b.wait_until(lambda: len(got_b.payloads("lobby")) == 1000)
        assert got_b.payloads("lobby") == [b"%d" % i for i in range(1000)]
        assert got_b.payloads("elsewhere") == []
        assert got_a.delivered == []  # A is subscribed too, but skips its own
        with trio.fail_after(10):  # counted as Redis confirms, maybe after B has them
            published = await a.wait_statistics(lambda stats: stats.published >= 1010)
        assert published.published >= 1010
        assert b.statistics().received >= 1000
        assert a.statistics().dropped == 0


async def test_nothing_is_delivered_after_unsubscribe(redis_server: RedisServer) -> None:
    """Once B unsubscribed, what A publishes on that room no longer reaches B."""
    a, b = RedisBackplane(redis_server.url), RedisBackplane(redis_server.url)
    async with running(a), running(b) as got_b:
        b.subscribe("lobby")
        await until_delivered(a, got_b, "lobby")
        a.publish("lobby", b"before")
        b.unsubscribe("lobby")
        b.subscribe("marker")
        await until_delivered(a, got_b, "marker")
        a.publish("lobby", b"late")
        a.publish("marker", b"end")  # after "late" on the same connection: a marker
        with trio.fail_after(5):
            await got_b.wait_until(lambda: got_b.payloads("marker") == [b"end"])
        assert b"late" not in got_b.payloads("lobby")


def test_publish_drops_and_counts_when_the_queue_is_full() -> None:
    """publish never blocks: beyond max_queue waiting payloads it drops and counts."""
    backplane = RedisBackplane("redis://127.0.0.1:1/0", max_queue=3)
    for _ in range(5):
        backplane.publish("lobby", b"x")
    assert backplane.statistics().dropped == 2


def test_room_names_are_validated() -> None:
    """A channel is never built from an invalid room name (no globs, no separators)."""
    backplane = RedisBackplane("redis://127.0.0.1:1/0")
    for name in ("*", "a b", "", "..", "x" * 129):
        with pytest.raises(trio_rooms.RoomNameError):
            backplane.subscribe(name)
        with pytest.raises(trio_rooms.RoomNameError):
            backplane.publish(name, b"x")


# ------------------------------------------------------------------------ membership


@EVERY_URL
async def test_members_across_nodes(redis_server: RedisServer) -> None:
    """members() lists every node's sessions of the room; leave removes one."""
    a, b = RedisBackplane(redis_server.url), RedisBackplane(redis_server.url)
    async with running(a), running(b):
        a.join("lobby", "ann")
        b.join("lobby", "bob")
        b.join("lobby", "bea")
        b.join("hall", "hal")
        assert set(await b.members("lobby")) >= {"bob", "bea"}  # local ones at once
        await until_written(a, b)
        assert set(await a.members("lobby")) == {"ann", "bob", "bea"}
        assert set(await b.members("lobby")) == {"ann", "bob", "bea"}
        assert set(await a.members("hall")) == {"hal"}
        b.leave("lobby", "bob")
        await until_written(b)
        assert set(await a.members("lobby")) == {"ann", "bea"}
        assert set(await a.members("empty")) == set()


async def test_members_of_a_dead_node_expire_after_the_ttl(redis_server: RedisServer) -> None:
    """A node cancelled without leaving stops being listed within its ttl: by Redis's
    clock, its entry's deadline is at most the ttl after it died, and the entry is
    listed until then. (How soon a poll sees it go is no test's to bound.)"""
    ttl = 0.6
    a = RedisBackplane(redis_server.url, ttl=ttl)
    b = RedisBackplane(redis_server.url, ttl=ttl)
    async with running(a):
        async with running(b):
            b.join("lobby", "bob")
            await until_written(b)
            assert set(await a.members("lobby")) == {"bob"}
        died, entries = await scores_now(redis_server.url, b"trio_rooms:members:lobby")
        [deadline] = entries.values()  # b's, for bob
        assert deadline - died <= ttl * 1000
        assert set(await a.members("lobby")) == {"bob"}  # b died; its entry is not gone yet
        await poll_until_expired(a, "lobby", set(), within=3)
        gone, entries = await scores_now(redis_server.url, b"trio_rooms:members:lobby")
        assert (entries, gone >= deadline) == ({}, True)  # trimmed once due, not before


# ------------------------------------------------------------------------ faults


async def test_redis_killed_then_restarted(redis_server: RedisServer) -> None:
    """Down: degraded, drops counted, members fails fast; back: both nodes recover alone."""
    a = fast(redis_server.url)
    b = fast(redis_server.url)
    async with running(a) as got_a, running(b) as got_b:
        a.subscribe("lobby")
        b.subscribe("lobby")
        a.join("lobby", "ann")
        await until_delivered(a, got_b, "lobby")
        await until_delivered(b, got_a, "lobby")

        redis_server.kill()
        await until_degraded(a, b, within=2)
        dropped = a.statistics().dropped
        for _ in range(10):
            a.publish("lobby", b"lost")
        assert a.statistics().dropped == dropped + 10
        with trio.fail_after(TIMEOUT + 0.2), pytest.raises(BackplaneError):
            await a.members("lobby")

        await trio.to_thread.run_sync(redis_server.start)
        await until_delivered(a, got_b, "lobby")
        await until_delivered(b, got_a, "lobby")
        await until_reconnected(a, b)
        assert "ann" in await b.members("lobby")  # A wrote its members again
        assert b"lost" not in got_b.payloads("lobby")


@pytest.mark.parametrize(
    ("kind", "connections"),
    [(PureToken.PUBSUB, 2), (PureToken.NORMAL, 6)],
    ids=["pubsub", "normal"],
)
async def test_connections_killed_by_redis_are_made_again(
    redis_server: RedisServer,
    kind: Literal[PureToken.PUBSUB, PureToken.NORMAL],
    connections: int,
) -> None:
    """CLIENT KILL TYPE pubsub (or normal): both nodes notice, reconnect, subscribe again."""
    a = fast(redis_server.url)
    b = fast(redis_server.url)
    async with running(a) as got_a, running(b) as got_b:
        a.subscribe("lobby")
        b.subscribe("lobby")
        await until_delivered(a, got_b, "lobby")
        await until_delivered(b, got_a, "lobby")
        async with coredis.Redis.from_url(redis_server.url) as admin:
            assert await admin.client_kill(type_=kind) == connections
        await until_delivered(a, got_b, "lobby")
        await until_delivered(b, got_a, "lobby")
        await until_reconnected(a, b)
        assert a.statistics().reconnects == 1
        assert b.statistics().reconnects == 1


async def test_hung_redis_is_noticed_within_a_bound(redis_server: RedisServer) -> None:
    """SIGSTOP: members fails within its timeout, both nodes degrade; SIGCONT: they recover."""
    a = fast(redis_server.url)
    b = fast(redis_server.url)
    process = redis_server.process
    assert process is not None
    async with running(a) as got_a, running(b) as got_b:
        a.subscribe("lobby")
        b.subscribe("lobby")
        await until_delivered(a, got_b, "lobby")
        await until_delivered(b, got_a, "lobby")
        process.send_signal(signal.SIGSTOP)
        try:
            a.publish("lobby", b"into the void")  # never blocks
            with trio.fail_after(TIMEOUT + 0.2), pytest.raises(BackplaneError):
                await a.members("lobby")
            bound = HEALTH_CHECK_INTERVAL + TIMEOUT + 0.5
            await until_degraded(a, b, within=bound)
        finally:
            process.send_signal(signal.SIGCONT)
        await until_delivered(a, got_b, "lobby")
        await until_delivered(b, got_a, "lobby")


async def test_a_node_starts_while_redis_is_down(redis_server: RedisServer) -> None:
    """run() starts at once without Redis, degrades, and connects when Redis comes up."""
    redis_server.kill()
    a = fast(redis_server.url)
    b = fast(redis_server.url)
    with trio.fail_after(1):  # started() does not wait for the broker
        async with running(a) as got_a, running(b) as got_b:
            await until_degraded(a, b, within=1)
            with pytest.raises(BackplaneError):
                await a.members("lobby")
            a.subscribe("lobby")
            b.subscribe("lobby")
            await trio.to_thread.run_sync(redis_server.start)
            await until_delivered(a, got_b, "lobby", within=5)
            await until_delivered(b, got_a, "lobby", within=5)
            with trio.fail_after(1):  # degraded since the start: not degraded is connected
                for backplane in (a, b):
                    await backplane.wait_statistics(lambda stats: not stats.degraded)


# ------------------------------------------------------------------------ imports


def test_importing_trio_rooms_loads_no_coredis() -> None:
    """``trio_rooms.backplane`` is importable without coredis; the Redis module names the extra."""
    code = (
        "import sys; sys.modules['coredis'] = None\n"
        "import trio_rooms, trio_rooms.backplane\n"
        "try:\n"
        "    import trio_rooms.backplane.redis\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pip install trio_rooms[redis]" in result.stdout


# ------------------------------------------------------------------------ end to end


async def _until_chat_flows(sender: Peer, receiver: Peer) -> None:
    """Chat from ``sender`` until ``receiver`` (on the other node) hears one."""
    with trio.fail_after(10):
        while True:
            await sender.send(SendChat(text="ping"))
            with trio.move_on_after(0.1):
                await receiver.receive_until(Chat)
                return


async def _next_chat_but_pings(peer: Peer) -> Chat:
    while True:
        message = await peer.receive_until(Chat)
        assert isinstance(message, Chat)
        if message.text != "ping":
            return message


async def _own_id(peer: Peer) -> str:
    joined = await peer.receive_until(UserJoined)
    assert isinstance(joined, UserJoined)
    return joined.user_id


class _Node(NamedTuple):
    rooms: Rooms[ChatRoom]
    port: int
    #: The backplane ``rooms`` runs, for its waits.
    backplane: RedisBackplane


@asynccontextmanager
async def _two_nodes(url: str) -> AsyncGenerator[tuple[_Node, _Node]]:
    """Two `open_rooms` on one Redis, each serving WebSocket on a free port."""
    backplane_a, backplane_b = RedisBackplane(url), RedisBackplane(url)
    async with (
        trio_rooms.open_rooms(ChatRoom, backplane=backplane_a) as rooms_a,
        trio_rooms.open_rooms(ChatRoom, backplane=backplane_b) as rooms_b,
        trio.open_nursery() as nursery,
    ):
        port_a: int = await nursery.start(trio_rooms.serve_websocket, rooms_a, "127.0.0.1", 0)
        port_b: int = await nursery.start(trio_rooms.serve_websocket, rooms_b, "127.0.0.1", 0)
        yield _Node(rooms_a, port_a, backplane_a), _Node(rooms_b, port_b, backplane_b)
        nursery.cancel_scope.cancel()


async def test_a_broadcast_on_one_node_reaches_the_clients_of_the_other(
    redis_server: RedisServer,
) -> None:
    """ann on node A chats; bob and bea on node B hear it, once, in order."""
    async with (
        _two_nodes(redis_server.url) as (node_a, node_b),
        connect(node_b.port, "lobby", "name=bob") as bob,
        connect(node_b.port, "lobby", "name=bea") as bea,
        connect(node_a.port, "lobby", "name=ann") as ann,
    ):
        await _until_chat_flows(ann, bob)
        for text in ("one", "two", "three"):
            await ann.send(SendChat(text=text))
        for peer in (bob, bea, ann):
            heard = [(await _next_chat_but_pings(peer)) for _ in range(3)]
            assert [(chat.name, chat.text) for chat in heard] == [
                ("ann", "one"),
                ("ann", "two"),
                ("ann", "three"),
            ]


async def test_exclude_self_holds_across_nodes(redis_server: RedisServer) -> None:
    """A shout from bob on node B reaches ann and amy on node A and bea on B, not bob."""
    async with (
        _two_nodes(redis_server.url) as (node_a, node_b),
        connect(node_a.port, "lobby", "name=ann") as ann,
        connect(node_a.port, "lobby", "name=amy") as amy,
        connect(node_b.port, "lobby", "name=bob") as bob,
        connect(node_b.port, "lobby", "name=bea") as bea,
    ):
        await _until_chat_flows(bob, ann)
        await _until_chat_flows(ann, bob)
        await bob.send(Shout(text="psst"))
        await bob.send(SendChat(text="said"))
        for peer in (ann, amy, bea):
            assert (await _next_chat_but_pings(peer)).text == "psst"
            assert (await _next_chat_but_pings(peer)).text == "said"
        assert (await _next_chat_but_pings(bob)).text == "said"  # the shout skipped him


async def test_room_members_lists_both_nodes(redis_server: RedisServer) -> None:
    """Room.members() on either node lists the sessions of both."""
    async with (
        _two_nodes(redis_server.url) as (node_a, node_b),
        connect(node_a.port, "lobby", "name=ann") as ann,
        connect(node_b.port, "lobby", "name=bob") as bob,
    ):
        ann_id = await _own_id(ann)
        bob_id = await _own_id(bob)
        # A session joins the backplane before its room hears UserJoined.
        await until_written(node_a.backplane, node_b.backplane)
        expected = sorted([ann_id, bob_id])
        assert await (await node_a.rooms.get("lobby")).members() == expected
        assert await (await node_b.rooms.get("lobby")).members() == expected
