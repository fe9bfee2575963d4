"""Red team of the owner's commit that carries its relayed sessions' frames
(`RelayedCommits`): bursts from relayed clients and the owner's own each answered once,
in order, the counter exact; the client's node's relay connections dropped mid-burst;
Redis paused mid-burst; a deposed owner woken after another took over gets nothing
through. Drops of either node's relay connections, or both, once or again and again, and
a SCRIPT FLUSH (the link drops its connections), lose no answer: the sessions move back
to their owner, and the answers to what they had sent before (handled after their relay
was lost) are replayed."""

from __future__ import annotations

import signal
from contextlib import AsyncExitStack

import pytest
import trio

from .owner_app import open_owner_node, serve_owner_rooms
from .redis_server import RedisServer
from .relay_bursts import (
    BURST,
    GAME,
    PATIENCE,
    Dropped,
    Reader,
    burst,
    bursting,
    check_each_once_in_order,
    kill,
    open_cluster,
    relay_ids,
)
from .sockets import open_raw

pytestmark = pytest.mark.slow


async def test_bursts_from_relayed_and_owner_clients_are_each_answered_once_in_order(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(PATIENCE):
        async with open_cluster(redis_server, 2, 3) as (owners, relayed, _, _):
            everyone = owners + relayed
            async with bursting(everyone):
                pass  # sent, all at once: their answers are read below
            await _answered_once_and_on(everyone)
            for reader in relayed:
                assert len(reader.welcomes) == 1, reader.name
    assert redis_server.command("GET", "trio_rooms:state:game:count") == (
        b"$4\r\n%d\r\n" % (5 * (BURST + 1))
    )


@pytest.mark.parametrize("dropped", ["owner", "client's node", "both"])
async def test_relay_connections_dropped_mid_burst_lose_and_double_no_answer(
    redis_server: RedisServer, dropped: Dropped
) -> None:
    with trio.fail_after(PATIENCE):
        async with open_cluster(redis_server, 1, 3) as (owners, relayed, owner_ids, client_ids):
            everyone = owners + relayed
            async with bursting(everyone):
                await relayed[0].wait_for(BURST // 4)
                ids = {"owner": owner_ids, "client's node": client_ids}.get(
                    dropped, owner_ids | client_ids
                )
                kill(redis_server, ids)
            await _answered_once_and_on(everyone)
    total = 4 * (BURST + 1)
    assert redis_server.command("GET", "trio_rooms:state:game:count") == b"$3\r\n%d\r\n" % total


async def test_a_deposed_owner_woken_with_relayed_adds_in_its_stream_gets_nothing_through(
    redis_server: RedisServer,
) -> None:
    """Owner a (a subprocess) is stopped past its lease with relayed adds in flight;
    b takes the room over and writes; a is woken: none of a's answers (which its
    fenced commits would carry) reaches any client, and the count stays exact."""
    url = redis_server.url
    async with open_owner_node(url, "a") as (process_a, port_a):
        with trio.fail_after(PATIENCE):
            async with AsyncExitStack() as stack:
                nursery = await stack.enter_async_context(trio.open_nursery())
                stack.callback(nursery.cancel_scope.cancel)
                on_a = Reader(
                    "a", await stack.enter_async_context(open_raw(port_a, GAME)), strict=False
                )
                nursery.start_soon(on_a.run)
                await on_a.wait_welcomes(1)
                _, port_b = await stack.enter_async_context(serve_owner_rooms(url, "b"))
                _, port_c = await stack.enter_async_context(serve_owner_rooms(url, "c"))
                relayed: list[Reader] = []
                for port, name in [(port_b, "b"), (port_c, "c")]:
                    client = await stack.enter_async_context(open_raw(port, GAME))
                    reader = Reader(name, client, strict=False)
                    nursery.start_soon(reader.run)
                    await reader.wait_welcomes(1)
                    assert reader.welcomes[0]["node"] == "a"
                    relayed.append(reader)
                for reader in relayed:
                    await reader.client.send(burst(5))
                    await reader.wait_for(5)
                process_a.send_signal(signal.SIGSTOP)
                try:
                    # Queued in a's stream / socket while it is stopped.
                    await on_a.client.send(burst(20))
                    for reader in relayed:
                        await reader.client.send(burst(20))
                    # b or c takes the room over once a's lease lapsed: welcomed anew.
                    for reader in relayed:
                        await reader.wait_welcomes(2)
                        assert reader.welcomes[1]["node"] != "a", reader.welcomes
                    before = [len(reader.counts) for reader in relayed]
                    for reader in relayed:
                        await reader.client.send(burst(10))
                    for reader, had in zip(relayed, before, strict=True):
                        await reader.wait_for(had + 10)
                finally:
                    process_a.send_signal(signal.SIGCONT)
                # a wakes up with 20 adds of each relayed client in its stream (or
                # resent) and 20 in its socket: its commits are fenced.
                with trio.move_on_after(5):
                    while not on_a.ended:
                        await on_a.changed.wait()
                assert on_a.counts == [], on_a.counts  # nothing answered by a after stop
                for reader in relayed:
                    before_more = len(reader.counts)
                    await reader.client.send(burst(10))
                    await reader.wait_for(before_more + 10)
                stored_raw = redis_server.command("GET", "trio_rooms:state:game:count")
                stored = int(stored_raw.split(b"\r\n")[1])
                seen: list[int] = []
                for reader in relayed:
                    assert reader.counts == sorted(reader.counts), (reader.name, reader.counts)
                    assert len(set(reader.counts)) == len(reader.counts), reader.name
                    assert len(reader.welcomes) == 2, (reader.name, reader.welcomes)
                    seen += reader.counts
                assert len(set(seen)) == len(seen), sorted(seen)
                assert max(seen) == stored
                # every answer after a's stop is the new owner's: 5 + 5 counted by a
                assert stored <= 10 + 2 * (20 + 10 + 10), stored


async def test_relay_connections_dropped_repeatedly_under_bursts(
    redis_server: RedisServer,
) -> None:
    """Three bursts, each cut by a drop of both nodes' relay connections."""
    with trio.fail_after(2 * PATIENCE):
        async with open_cluster(redis_server, 1, 2) as (owners, relayed, _, _):
            everyone = owners + relayed
            for round_ in range(1, 4):
                async with trio.open_nursery() as nursery:
                    for reader in everyone:
                        nursery.start_soon(reader.client.send, burst(100))
                    await relayed[round_ % 2].wait_for((round_ - 1) * 100 + 30)
                    kill(redis_server, relay_ids(redis_server))
                for reader in everyone:
                    await reader.wait_for(round_ * 100)
            check_each_once_in_order(everyone, 300)


async def test_script_flush_during_bursts_recovers_and_doubles_no_answer(
    redis_server: RedisServer,
) -> None:
    """SCRIPT FLUSH while relayed clients burst: the link's commits find no script
    (NOSCRIPT). The cluster must recover: the relayed sessions (resumable) keep being
    answered, possibly after a move or a resume, each stored count at most once."""
    with trio.fail_after(PATIENCE):
        async with open_cluster(redis_server, 1, 2, "?resume=&seen=0", strict=False) as (
            owners,
            relayed,
            _,
            _,
        ):
            everyone = owners + relayed
            async with bursting(everyone):
                await relayed[0].wait_for(BURST // 4)
                assert redis_server.command("SCRIPT", "FLUSH") == b"+OK\r\n"
            # Each session is answered on: after the flush, a fresh add must be answered
            # (within PATIENCE) by every relayed session that is still open.
            with trio.move_on_after(10):
                for reader in everyone:
                    while not reader.ended and len(reader.counts) < BURST:
                        await reader.changed.wait()
            report = {r.name: (len(r.counts), r.closed, len(r.welcomes), r.ended) for r in everyone}
            for reader in everyone:
                assert reader.counts == sorted(reader.counts), reader.name
                assert len(set(reader.counts)) == len(reader.counts), reader.name
            seen = [c for r in everyone for c in r.counts]
            assert len(set(seen)) == len(seen), report
            # Liveness: the relayed sessions still open are answered after the flush.
            for reader in relayed:
                assert not reader.ended, report
                had = len(reader.counts)
                await reader.client.send(burst(3))
                with trio.fail_after(15):
                    await reader.wait_for(had + 3)
            assert all(len(r.counts) == BURST + 3 for r in relayed), report


async def test_redis_paused_mid_burst_doubles_no_answer_and_the_sessions_go_on(
    redis_server: RedisServer,
) -> None:
    """Redis SIGSTOPped for 0.8 s mid-burst (past the link's 0.3 s reply timeout: the
    commits waiting on the link are written again through the storage): no answer is
    delivered twice or out of order, no add applied twice, and every session that is
    still open is answered afterwards."""
    with trio.fail_after(PATIENCE):
        async with open_cluster(redis_server, 1, 2, "?resume=&seen=0", strict=False) as (
            owners,
            relayed,
            _,
            _,
        ):
            everyone = owners + relayed
            async with bursting(everyone):
                await relayed[0].wait_for(BURST // 4)
                redis_server.pause()
                try:
                    await trio.sleep(0.8)  # sync-ok: the fault's length, not a synchronisation
                finally:
                    redis_server.resume()
            with trio.move_on_after(10):
                for reader in everyone:
                    while not reader.ended and len(reader.counts) < BURST:
                        await reader.changed.wait()
            seen = [c for r in everyone for c in r.counts]
            report = {r.name: (len(r.counts), r.closed, len(r.welcomes)) for r in everyone}
            for reader in everyone:
                assert reader.counts == sorted(reader.counts), reader.name
            assert len(set(seen)) == len(seen), report
            stored = int(redis_server.command("GET", "trio_rooms:state:game:count").split()[1])
            assert stored <= 3 * BURST, (stored, report)  # no add applied twice
            for reader in everyone:
                if reader.ended:
                    continue
                had = len(reader.counts)
                await reader.client.send(burst(2))
                with trio.fail_after(15):
                    await reader.wait_for(had + 2)


async def _answered_once_and_on(everyone: list[Reader]) -> None:
    """Every burst answered, then one more add from each: nothing late, nothing extra,
    each answer once and in order."""
    for reader in everyone:
        await reader.wait_for(BURST)
    for reader in everyone:
        await reader.client.send(burst(1))
        await reader.wait_for(BURST + 1)
    check_each_once_in_order(everyone, BURST + 1)
