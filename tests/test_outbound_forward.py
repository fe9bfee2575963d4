"""The output gate's order on the owner: frames for other nodes leave before local sockets'."""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from trio_rooms._core.outbound import TEXT, Frame, OutboundQueue
from trio_rooms._core.output_gate import Durability


async def test_a_commit_forwards_the_relays_frames_before_it_writes_local_sockets() -> None:
    """Once a commit is durable, the queues with a forward hook are released first and the
    hook is called once for them, before any local queue's direct write, whatever the
    order the queues were held in."""
    durability = Durability()
    events: list[str] = []

    def local(frames: list[Frame]) -> bytes:
        events.append("local " + b"".join(frame.payload for frame in frames).decode())
        return b""

    def gathered(frames: list[Frame]) -> bytes:
        events.append("gathered " + b"".join(frame.payload for frame in frames).decode())
        return b""

    def forward() -> None:
        events.append("forward")

    queues = [OutboundQueue(4, 1024, durability=durability) for _ in range(4)]
    for index, queue in enumerate(queues):
        if index % 2:
            queue.direct = gathered
            queue.forward = forward
        else:
            queue.direct = local
    async with trio.open_nursery() as nursery:
        for queue in queues:
            nursery.start_soon(queue.get_batch, 1024)
        await trio.testing.wait_all_tasks_blocked()
        for index, queue in enumerate(queues):
            queue.put_first(Frame(TEXT, b"%d" % index, after=1))
        assert events == []  # held by the gate
        durability.advance(1)
        assert events == ["gathered 1", "gathered 3", "forward", "local 0", "local 2"]
        nursery.cancel_scope.cancel()


async def test_a_forwarding_queue_still_held_waits_for_its_own_commit() -> None:
    """A queue with a forward hook whose frame waits for a later commit stays watched,
    untouched by the first (its hook not called for nothing), and is released by that
    commit."""
    durability = Durability()
    written: list[bytes] = []
    forwards: list[int] = []
    queue = OutboundQueue(4, 1024, durability=durability)
    queue.direct = lambda frames: written.extend(frame.payload for frame in frames) or b""
    queue.forward = lambda: forwards.append(durability.seq)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.get_batch, 1024)
        await trio.testing.wait_all_tasks_blocked()
        queue.put_first(Frame(TEXT, b"later", after=2))
        durability.advance(1)
        assert written == []
        durability.advance(2)
        assert (written, forwards) == ([b"later"], [2])
        nursery.cancel_scope.cancel()


async def test_a_commit_that_carries_them_releases_only_the_relays_frames_it_holds() -> None:
    """`release_forwards`: the queues with a forward hook let their frames held by the
    commit go to their direct write (into the commit, which carries them), without the
    hook; the local queues, and a frame held by a later commit, wait; the durable seq
    does not move. Once the commit is durable, the local ones go, and nothing twice."""
    durability = Durability()
    events: list[str] = []

    def into(name: str) -> Callable[[list[Frame]], bytes]:
        def direct(frames: list[Frame]) -> bytes:
            events.append(name + " " + b"".join(frame.payload for frame in frames).decode())
            return b""

        return direct

    relayed, later, local = (OutboundQueue(4, 1024, durability=durability) for _ in range(3))
    relayed.direct, later.direct, local.direct = into("relayed"), into("later"), into("local")
    relayed.forward = later.forward = lambda: events.append("forward")
    async with trio.open_nursery() as nursery:
        for queue in (relayed, later, local):
            nursery.start_soon(queue.get_batch, 1024)
        await trio.testing.wait_all_tasks_blocked()
        relayed.put_first(Frame(TEXT, b"r", after=1))
        later.put_first(Frame(TEXT, b"l", after=2))
        local.put_first(Frame(TEXT, b"o", after=1))
        durability.release_forwards(1)
        assert (events, durability.seq) == (["relayed r"], 0)
        durability.advance(1)
        assert events == ["relayed r", "local o"]
        durability.advance(2)
        assert events == ["relayed r", "local o", "later l", "forward"]
        nursery.cancel_scope.cancel()
