"""Two trio_rooms processes on one real Redis: one room across both nodes.

Every node is `tests.cluster_app` (the chat app on `RedisStorage` and
`RedisBackplane`) in a subprocess; the clients are raw WebSocket clients.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncGenerator

import pytest
import trio

from .cluster_app import open_node
from .members import Member, close_all, joined_at_once
from .redis_server import RedisServer

pytestmark = pytest.mark.slow

Nodes = tuple[tuple[trio.Process, int], tuple[trio.Process, int]]


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncGenerator[Nodes]:
    """Two nodes on one fresh Redis: each process and its port."""
    async with open_node(redis_server.url) as node_a, open_node(redis_server.url) as node_b:
        yield node_a, node_b


async def _join_many(port: int, count: int) -> list[Member]:
    members: list[Member] = []

    async def one() -> None:
        members.append(await Member.join(port))

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return members


async def _until_heard(sender: Member, listener: Member, tag: str) -> None:
    """Say probes on one node until a client of the other node hears one.

    A node subscribes to the room when its first client joins; this waits until
    that subscription (or a re-subscription after a fault) carries messages.
    """
    heard = trio.Event()

    async def listen() -> None:
        await listener.chats(f"probe-{tag}")
        heard.set()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            n = 0
            while not heard.is_set():
                await sender.say(f"probe-{tag}-{n}")
                n += 1
                with trio.move_on_after(0.05):
                    await heard.wait()


async def test_every_client_gets_every_broadcast_of_both_nodes_in_order(nodes: Nodes) -> None:
    (_, port_a), (_, port_b) = nodes
    on_a = await _join_many(port_a, 20)
    on_b = await _join_many(port_b, 20)
    await _until_heard(on_a[0], on_b[0], "ab")
    await _until_heard(on_b[0], on_a[0], "ba")
    count = 100

    progress: dict[str, dict[str, list[int]]] = {}

    async def check(member: Member, where: str) -> None:
        seen = progress[where] = {"A": [], "B": []}
        while len(seen["A"]) < count or len(seen["B"]) < count:
            origin, _, n = (await member.chats("from-")).removeprefix("from-").partition("-")
            seen[origin].append(int(n))
        assert seen == {"A": list(range(count)), "B": list(range(count))}

    def missing() -> dict[str, dict[str, int]]:
        """Per unfinished client (node and index): how many of each node's chats it got."""
        return {
            where: {origin: len(got) for origin, got in seen.items()}
            for where, seen in progress.items()
            if any(len(got) < count for got in seen.values())
        }

    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for index, member in enumerate(on_a):
                    nursery.start_soon(check, member, f"A{index}")
                for index, member in enumerate(on_b):
                    nursery.start_soon(check, member, f"B{index}")
                for n in range(count):
                    await on_a[1].say(f"from-A-{n}")
                    await on_b[1].say(f"from-B-{n}")
    except trio.TooSlowError:
        # Say who missed what: a node's subscription gap and a lost frame look different.
        raise AssertionError(f"clients still waiting after 30 s: {missing()}") from None
    finally:  # a failure here must not leave 40 sockets for a later test to trip on
        await close_all((*on_a, *on_b))


async def test_clients_of_a_killed_node_resume_on_the_other_with_their_data(
    nodes: Nodes,
) -> None:
    (node_a, port_a), (_, port_b) = nodes
    members = [await Member.join(port_a, "resume=") for _ in range(5)]
    for n, member in enumerate(members):
        await member.send({"type": "setName", "name": f"renamed-{n}"})
        # Renamed is broadcast after update() returned: the name is in Redis.
        while (await member.receive()).get("name") != f"renamed-{n}":
            pass
    node_a.kill()  # SIGKILL: no close frames, no cleanup
    await node_a.wait()
    for n, member in enumerate(members):
        assert member.session is not None
        token = member.session["token"]
        assert isinstance(token, str)
        await member.aclose()
        again = await Member.join(port_b, f"resume={token}")
        assert again.session is not None
        assert again.session["id"] == member.session["id"]
        assert again.session["resumed"] is True
        await again.send({"type": "whisper", "text": "who am I?"})
        while (reply := await again.receive()).get("type") != "chat":
            pass
        assert reply["name"] == f"renamed-{n}"
        await again.aclose()


async def test_one_token_raced_on_both_nodes_resumes_exactly_one_connection(
    nodes: Nodes,
) -> None:
    """Six connections, three per node, present one token at once: one resumes, on either
    node; the others get fresh sessions; the old connection ends with 4001 (at once on its
    own node, at its next update on the other) and every racer hears the room."""
    (_, port_a), (_, port_b) = nodes
    ports = [port_a, port_b] * 3
    async with (
        await Member.join(port_a, "resume=&name=victim") as victim,
        joined_at_once(ports, f"resume={victim.token}&name=racer") as racers,
    ):
        winners = [n for n, racer in enumerate(racers) if racer.resumed]
        assert len(winners) == 1, [racer.session for racer in racers]
        (winner,) = winners
        assert racers[winner].session_id == victim.session_id
        assert await racers[winner].name() == "victim"
        fresh = {racer.session_id for racer in racers if not racer.resumed}
        assert len(fresh) == len(racers) - 1
        assert victim.session_id not in fresh
        if ports[winner] == port_b:  # the old session learns it at its next write
            await victim.send({"type": "setName", "name": "stale"})
        assert await victim.client.close_code() == 4001
        assert await racers[winner].name() == "victim"  # the stale write was refused
        on_a, on_b = racers[0::2], racers[1::2]
        await _until_heard(on_a[0], on_b[0], "ab")
        await _until_heard(on_b[0], on_a[0], "ba")
        await on_b[0].say("to-all")
        with trio.fail_after(10):
            for racer in racers:
                assert await racer.chats("to-all") == "to-all"


async def test_nodes_ride_out_a_redis_restart(nodes: Nodes, redis_server: RedisServer) -> None:
    (_, port_a), (_, port_b) = nodes
    ann, amy = await Member.join(port_a), await Member.join(port_a)
    bob = await Member.join(port_b)
    await _until_heard(ann, bob, "before")
    redis_server.kill()
    with trio.fail_after(5):  # local broadcast goes on without Redis
        await ann.say("local-only")
        assert await amy.chats("local-") == "local-only"
    redis_server.start()
    await _until_heard(ann, bob, "after")  # the nodes reconnected and resubscribed
    await _until_heard(bob, ann, "back")
    await close_all((ann, amy, bob))


async def test_a_stopped_node_dropped_by_redis_resubscribes_when_it_resumes(
    nodes: Nodes, redis_server: RedisServer
) -> None:
    """SIGSTOP a node while the other publishes: Redis drops its subscriber connection
    for its output buffer; after SIGCONT the node subscribes again on its own."""
    (_, port_a), (node_b, port_b) = nodes
    ann, bob = await Member.join(port_a), await Member.join(port_b)
    await _until_heard(ann, bob, "before")
    redis_server.command("CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 32kb 1")
    assert _subscribers(redis_server) == 2  # one subscriber connection per node
    node_b.send_signal(signal.SIGSTOP)
    try:
        filler = "x" * 1000
        with trio.fail_after(20):
            while _subscribers(redis_server) > 1:  # until Redis dropped the stopped one
                for _ in range(50):
                    await ann.say(f"filler-{filler}")
                for _ in range(50):  # ann's node is alive and delivering
                    await ann.chats("filler-")
    finally:
        os.kill(node_b.pid, signal.SIGCONT)
    await _until_heard(ann, bob, "after")
    await close_all((ann, bob))


def _subscribers(redis_server: RedisServer) -> int:
    """Connections subscribed to a channel (the nodes' subscriber connections)."""
    listing = redis_server.command("CLIENT", "LIST", "TYPE", "pubsub")
    return sum(1 for line in listing.split(b"\n") if b" sub=" in line and b" sub=0 " not in line)
