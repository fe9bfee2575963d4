"""`RelayedCommits`: a fenced commit that carries the relayed frames it lets go, on a real
redis-server. Their entries reach the peer's stream only with the commit's writes, in
their relay's order among the link's other entries; a refused commit adds none."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

import orjson
import pytest
import trio
import trio.testing

from trio_rooms import OwnershipLostError, StorageError
from trio_rooms._core.outbound import TEXT, Frame
from trio_rooms._core.storage import Commit
from trio_rooms._resp import open_resp
from trio_rooms.backplane._relay_commit import RelayedCommits
from trio_rooms.backplane._relay_end import RelayEnd
from trio_rooms.backplane._relay_entries import CREDIT, FRAMES, EntryReader
from trio_rooms.backplane._relay_frames import grouped
from trio_rooms.backplane._relay_link import RelayLink
from trio_rooms.storage.redis import RedisStorage

from .owner_app import open_relayed_client
from .redis_server import RedisServer
from .relay_streams import stream_data

PATIENCE = 10.0
ROOM = "r"
#: A commit of the owner (its token 5, the room's fence) that writes ``k``.
WRITE = Commit(room=ROOM, values={"k": b"v"}, fence=5)


class _Ends:
    """The peer's relays' ends here: nothing comes back to them in these tests."""

    def __init__(self) -> None:
        self.broke = trio.Event()

    def deliver(self, entry: object) -> None:
        raise AssertionError(f"nothing is sent to it: {entry!r}")

    def frames(self, frames: object) -> None:
        raise AssertionError("no frames are sent to it")

    def broken(self, why: str) -> None:
        self.broke.set()


@asynccontextmanager
async def _open(
    redis_server: RedisServer, timeout: float = 5.0
) -> AsyncGenerator[tuple[RelayLink, RedisStorage, RelayedCommits, RelayEnd, _Ends]]:
    """Node ``a``'s link and storage, its route, and a relay of its to peer ``b``; the
    room's fence at 5."""
    storage = RedisStorage(redis_server.url, prefix="t:", timeout=timeout)
    link = RelayLink(
        redis_server.url, "a", prefix="t:", timeout=1.0, dead_after=60, max_stream=100, max_queue=64
    )
    await storage.open()
    try:
        with trio.fail_after(PATIENCE):
            await storage.commit(Commit(room=ROOM, fence=5))
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            route = RelayedCommits(link, storage)
            end, ends = link.new_end("b"), _Ends()
            link.add(end, ends)
            yield link, storage, route, end, ends
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await storage.aclose()


async def _stream(redis_server: RedisServer) -> list[tuple[int, list[bytes]]]:
    """Peer ``b``'s stream: each relay entry's seq and what it carries (a FRAMES entry's
    payloads, another's kind), in the stream's order."""
    async with open_resp(redis_server.url, timeout=1.0) as redis:
        stream = await stream_data(redis, b"t:relay:b")
    found: list[tuple[int, list[bytes]]] = []
    for data in stream:
        for entry in EntryReader().read(data):
            assert not isinstance(entry, Exception)
            if entry.kind == FRAMES:
                group = grouped(entry.source, entry.body)
                for (_, seq), frames in zip(group.relays, group.frames, strict=True):
                    found.append((seq, [frame.payload for frame in frames]))
            else:
                found.append((entry.seq, [entry.kind.encode()]))
    return found


def _putting(link: RelayLink, end: RelayEnd, *payloads: bytes) -> Callable[[], None]:
    """A commit's ``release``: the relay's frames it lets go."""

    def release() -> None:
        assert link.put_frames(end, [Frame(TEXT, payload) for payload in payloads])

    return release


async def _value(storage: RedisStorage) -> bytes | None:
    with trio.fail_after(PATIENCE):
        return await storage.get(ROOM, "k")


async def test_a_commit_adds_the_frames_it_lets_go_with_its_writes(
    redis_server: RedisServer,
) -> None:
    async with _open(redis_server) as (link, storage, route, end, _):
        with trio.fail_after(PATIENCE):
            assert await route.commit(WRITE, _putting(link, end, b"one", b"two")) == []
        assert await _value(storage) == b"v"
        assert await _stream(redis_server) == [(1, [b"one", b"two"])]
        assert end.sent == 1


async def test_each_relays_entries_keep_their_order_around_a_commit(
    redis_server: RedisServer,
) -> None:
    """Frames grouped before the commit go first, in an entry of their own; a CREDIT
    queued after it, then frames, after it: the relay's seqs in the stream's order."""
    async with _open(redis_server) as (link, _, route, end, _):
        assert link.put_frames(end, [Frame(TEXT, b"before")])
        with trio.fail_after(PATIENCE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(route.commit, WRITE, _putting(link, end, b"carried"))
                await trio.testing.wait_all_tasks_blocked()
                link.send_nowait(end, CREDIT, 1)
                assert link.put_frames(end, [Frame(TEXT, b"after")])
                link.flush_nowait()
            # Written after those on the one connection: once answered, they are in.
            last = Commit(room=ROOM, values={"k": b"w"}, fence=5)
            assert await route.commit(last, _putting(link, end, b"last")) == []
        assert await _stream(redis_server) == [
            (1, [b"before"]),
            (2, [b"carried"]),
            (3, [CREDIT.encode()]),
            (4, [b"after"]),
            (5, [b"last"]),
        ]


async def test_a_refused_commit_adds_no_frame(redis_server: RedisServer) -> None:
    """A deposed owner's commit (its token below the room's fence): nothing of it lands,
    its frames neither."""
    async with _open(redis_server) as (link, storage, route, end, _):
        with trio.fail_after(PATIENCE):
            await storage.commit(Commit(room=ROOM, fence=9))  # a newer owner
            commit = Commit(room=ROOM, values={"k": b"stale"}, fence=5)
            with pytest.raises(OwnershipLostError):
                await route.commit(commit, _putting(link, end, b"stale"))
        assert await _value(storage) is None
        assert await _stream(redis_server) == []


async def test_a_commit_whose_stream_is_not_one_writes_nothing(redis_server: RedisServer) -> None:
    """The script checks the streams' type before its first write: a commit whose entry
    cannot be added fails whole."""
    async with _open(redis_server) as (link, storage, route, end, _):
        async with open_resp(redis_server.url, timeout=1.0) as redis:
            assert await redis.call(b"SET", b"t:relay:b", b"not a stream") == b"OK"
        with trio.fail_after(PATIENCE), pytest.raises(StorageError, match="expected a stream"):
            await route.commit(WRITE, _putting(link, end, b"lost"))
        assert await _value(storage) is None


async def test_a_commit_with_no_frame_to_carry_is_left_to_the_storage(
    redis_server: RedisServer,
) -> None:
    async with _open(redis_server) as (_, storage, route, _, _):
        with trio.fail_after(PATIENCE):
            assert await route.commit(WRITE, lambda: None) is None
        assert await _value(storage) is None  # not written: the caller's to write


async def test_a_commit_redis_does_not_answer_fails_in_time(redis_server: RedisServer) -> None:
    """Redis paused: the link gives the reply its timeout, then drops the connection,
    and the commit written again through the storage fails within the storage's."""
    async with _open(redis_server, timeout=0.5) as (link, _, route, end, _):
        redis_server.pause()
        try:
            with trio.fail_after(PATIENCE), pytest.raises(StorageError, match=r"within 0\.5 s"):
                await route.commit(WRITE, _putting(link, end, b"late"))
        finally:
            redis_server.resume()


async def test_a_commit_whose_connection_is_lost_is_written_by_the_storage_alone(
    redis_server: RedisServer,
) -> None:
    """The relays' connection dropped while a commit waits on it (Redis paused writes, so
    it has not run): its writes land once, through the storage's own connection; its
    entries not at all (their relays broke with the connection)."""
    async with _open(redis_server) as (link, storage, route, end, ends):
        results: list[list[bool] | None] = []

        async def commit_it() -> None:
            found = await route.commit(WRITE, _putting(link, end, b"dropped"))
            results.append(None if found is None else list(found))

        with trio.fail_after(PATIENCE):
            async with (
                open_resp(redis_server.url, timeout=1.0) as redis,
                trio.open_nursery() as nursery,
            ):
                assert await redis.call(b"CLIENT", b"PAUSE", b"10000", b"WRITE") == b"OK"
                nursery.start_soon(commit_it)
                await trio.testing.wait_all_tasks_blocked()
                for line in redis_server.command("CLIENT", "LIST").decode().splitlines():
                    if " name=trio_rooms.relays." in line:
                        client_id = line.split()[0].removeprefix("id=").encode()
                        assert await redis.call(b"CLIENT", b"KILL", b"ID", client_id) == 1
                await ends.broke.wait()
                assert await redis.call(b"CLIENT", b"UNPAUSE") == b"OK"
        assert results == [[]]
        assert await _value(storage) == b"v"
        assert await _stream(redis_server) == []


async def test_a_commit_whose_script_redis_forgot_lands_through_the_storage(
    redis_server: RedisServer,
) -> None:
    """After a SCRIPT FLUSH the EVALSHA is refused (NOSCRIPT): not tried again with EVAL
    on the link, which would land the frames behind entries of their relay sent since.
    Its writes land through the storage (the room goes on), its entries not; the link
    drops its connections (the relays break) and connects again, loading the script."""
    async with _open(redis_server) as (link, storage, route, end, ends):
        async with open_resp(redis_server.url, timeout=1.0) as redis:
            assert await redis.call(b"SCRIPT", b"FLUSH") == b"OK"
        with trio.fail_after(PATIENCE):
            assert await route.commit(WRITE, _putting(link, end, b"lost")) == []
            await ends.broke.wait()
            await link.wait_connected()
        assert await _value(storage) == b"v"
        assert await _stream(redis_server) == []
        with trio.fail_after(PATIENCE):
            again = Commit(room=ROOM, values={"k": b"w"}, fence=5)
            assert await route.commit(again, _putting(link, end, b"found")) == []
        assert await _stream(redis_server) == [(2, [b"found"])]


async def test_the_link_loads_the_commit_script_when_it_connects(
    redis_server: RedisServer,
) -> None:
    """A Redis that forgot the script (restarted, flushed) has it again once the link
    connects again: commits through the link find it."""
    async with _open(redis_server) as (link, storage, route, end, ends):
        async with open_resp(redis_server.url, timeout=1.0) as redis:
            assert await redis.call(b"SCRIPT", b"FLUSH") == b"OK"
            assert await redis.call(b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"yes")
        with trio.fail_after(PATIENCE):
            await ends.broke.wait()  # the link lost its connections
            await link.wait_connected()
            assert await route.commit(WRITE, _putting(link, end, b"found")) == []
        assert await _value(storage) == b"v"


async def test_a_relayed_sessions_reply_reaches_its_node_from_inside_the_commit(
    redis_server: RedisServer,
) -> None:
    """Two real nodes: the reply of the owner to a relayed client is added to the client
    node's stream by the room's commit script (Redis's MONITOR shows that XADD run by
    Lua), not by an XADD of its own after the commit's reply."""
    query = "resume=&seen=0"
    with trio.fail_after(PATIENCE):
        async with (
            open_relayed_client(redis_server.url, query) as relayed,
            open_resp(redis_server.url, timeout=PATIENCE) as monitor,
        ):
            assert await monitor.call(b"MONITOR") == b"OK"
            await relayed.client.send_text('{"type": "add"}')
            assert orjson.loads(await relayed.client.receive_text())["type"] == "counted"
            while True:
                line = await monitor.reply()
                assert isinstance(line, bytes)
                if b'"XADD" "trio_rooms:relay:b"' in line and b"counted" in line:
                    break  # the reply's entry (not a BEAT, nor a CREDIT)
            assert b"[0 lua]" in line, line
