"""Fencing tokens on a real redis-server: a deposed owner's writes never reach storage.

`RedisStorage.commit` compares `Commit.fence` with the room's fence inside its script;
the rooms of `tests.owner_app` run in this process on `RedisCluster` leases, and
clients are raw WebSocket clients on real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import coredis
import orjson
import pytest
import trio

from trio_rooms import OwnershipLostError, Rooms, serve_websocket
from trio_rooms._core import tokens
from trio_rooms.backplane._leases import Leases
from trio_rooms.storage import Commit, LoggedFrame, RecordWrite, SessionRecord, StoredAlarm
from trio_rooms.storage.redis import RedisStorage

from .owner_app import CounterRoom, open_owner_rooms
from .redis_server import RedisServer
from .sockets import CLOSE, PING, RawClient, open_raw

#: Bounds every wait: a few lease TTLs.
PATIENCE = 10.0


@pytest.fixture
async def storage(redis_server: RedisServer) -> AsyncGenerator[RedisStorage]:
    backend = RedisStorage(redis_server.url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncGenerator[coredis.Redis[bytes]]:
    """A plain client, to look at what was written and to move fences."""
    client = coredis.Redis.from_url(redis_server.url)
    async with client:
        yield client


def _everything(fence: int) -> Commit:
    """A commit of ``game`` that writes one of every kind, fenced with ``fence``."""
    record = SessionRecord(room="game", session_id="s1", data=b"{}", wire="json", expires_at=9e9)
    return Commit(
        room="game",
        values={"k": b"v"},
        alarms={"a": StoredAlarm(room="game", name="a", at=1.0)},
        records=[RecordWrite(record=record)],
        frames=[LoggedFrame(1, b"frame")],
        keep_frames=10,
        fence=fence,
    )


async def test_a_commit_below_the_rooms_fence_is_refused_and_writes_nothing(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """A commit whose token is below the room's fence raises OwnershipLostError, and none
    of its values, alarms, records or frames is stored."""
    await storage.commit(Commit(room="game", fence=5))
    with pytest.raises(OwnershipLostError) as caught:
        await storage.commit(_everything(4))
    assert (caught.value.room, caught.value.token, caught.value.fence) == ("game", 4, 5)
    assert await storage.get("game", "k") is None
    assert await storage.load_alarms("game") == []
    assert await storage.load_session("game", "s1") is None
    assert await storage.load_frames("game") == []
    assert await redis.get(b"trio_rooms:fence:game") == b"5"


async def test_a_fenced_commit_raises_the_fence_and_its_token_keeps_writing(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """A commit at or above the fence is written and raises the fence to its token, so an
    earlier owner's token is refused from then on; other rooms' fences are apart."""
    assert list(await storage.commit(_everything(3))) == [True]
    assert await redis.get(b"trio_rooms:fence:game") == b"3"
    await storage.commit(Commit(room="game", values={"k": b"again"}, fence=3))
    assert await storage.get("game", "k") == b"again"
    with pytest.raises(OwnershipLostError):
        await storage.commit(Commit(room="game", values={"k": b"old"}, fence=2))
    await storage.commit(Commit(room="other", values={"k": b"other"}, fence=1))
    assert await storage.get("game", "k") == b"again"
    assert await storage.get("other", "k") == b"other"


async def test_an_unfenced_commit_is_never_refused_and_moves_no_fence(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """A commit with fence 0 (no owner: single node, backplane only) is written whatever
    the room's fence, and leaves it as it was."""
    await storage.commit(Commit(room="game", fence=7))
    await storage.commit(Commit(room="game", values={"k": b"v"}))
    assert await storage.get("game", "k") == b"v"
    assert await redis.get(b"trio_rooms:fence:game") == b"7"
    assert await redis.get(b"trio_rooms:fence:other") is None


async def test_a_new_lease_on_the_room_fences_off_the_previous_owners_writes(
    storage: RedisStorage, redis_server: RedisServer
) -> None:
    """The leases count their tokens in the storage's fence key: once another node has
    taken the room, a commit with the previous token is refused before any new write."""
    leases = Leases(redis_server.url, ttl=0.6, timeout=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(leases.run)
        first = await leases.acquire("game")
        assert first is not None
        await storage.commit(Commit(room="game", values={"k": b"first"}, fence=first.token))
        await leases.release(first)
        second = await leases.acquire("game")
        assert second is not None
        with pytest.raises(OwnershipLostError):
            await storage.commit(Commit(room="game", values={"k": b"late"}, fence=first.token))
        assert await storage.get("game", "k") == b"first"
        nursery.cancel_scope.cancel()


def test_a_negative_fence_is_refused() -> None:
    """A Commit cannot be built with a negative fencing token."""
    with pytest.raises(ValueError, match="fence"):
        Commit(room="game", fence=-1)


# ------------------------------------------------------------- rooms that lose it


@pytest.fixture
async def node_a(redis_server: RedisServer) -> AsyncGenerator[tuple[Rooms[CounterRoom], int]]:
    """Node ``a``'s rooms in this process, served on a free port."""
    async with (
        open_owner_rooms(redis_server.url, "a") as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(serve_websocket, rooms, "127.0.0.1", 0)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def _until_close(client: RawClient) -> list[tuple[int, int | None]]:
    """Each frame up to the server's close frame but pings: opcode, and close code."""
    frames: list[tuple[int, int | None]] = []
    while (frame := await client.receive_frame()) is not None:
        if frame.opcode == CLOSE:
            frames.append((CLOSE, frame.close_code))
            break
        if frame.opcode != PING:
            frames.append((frame.opcode, None))
    return frames


async def test_a_room_whose_write_is_fenced_off_closes_its_sessions_and_sends_nothing_held(
    node_a: tuple[Rooms[CounterRoom], int], redis: coredis.Redis[bytes]
) -> None:
    """When another node's acquisition has raised the fence, the owner's next commit is
    refused: the reply held behind it never leaves, its clients get 1012, and the room
    stops on that node."""
    rooms, port = node_a
    with trio.fail_after(PATIENCE):
        async with open_raw(port, "/rooms/game/websocket") as client:
            assert (await client.receive_json())["type"] == "welcome"
            await client.send_text('{"type": "add"}')
            assert await client.receive_json() == {"type": "counted", "stored": 1, "local": 1}
            await redis.incr(b"trio_rooms:fence:game")  # what a newer acquisition does
            await client.send_text('{"type": "add"}')
            assert await _until_close(client) == [(CLOSE, 1012)]
        await rooms.wait_statistics(lambda stats: stats.rooms == 0)
    assert await redis.get(b"trio_rooms:state:game:count") == b"1"


async def test_a_room_whose_lease_is_lost_stops_at_once(
    node_a: tuple[Rooms[CounterRoom], int], redis: coredis.Redis[bytes]
) -> None:
    """A lease taken away in Redis ends at the owner's next renewal: the room stops there
    and its clients get 1012, with no write of it stored after."""
    rooms, port = node_a
    with trio.fail_after(PATIENCE):
        async with open_raw(port, "/rooms/game/websocket") as client:
            assert (await client.receive_json())["type"] == "welcome"
            await redis.delete([b"trio_rooms:lease:game"])
            assert await _until_close(client) == [(CLOSE, 1012)]
        await rooms.wait_statistics(lambda stats: stats.rooms == 0)


async def test_claims_deletions_and_alarm_moves_below_the_fence_are_refused(
    storage: RedisStorage,
) -> None:
    """claim_session, delete_session and replace_alarm with a token below the room's fence
    raise OwnershipLostError and change nothing; at the fence, or unfenced, they go on."""
    record = SessionRecord(
        room="game", session_id="s1", data=b"{}", wire="json", token_hash=b"h1", expires_at=9e9
    )
    alarm = StoredAlarm(room="game", name="a", at=1.0)
    await storage.commit(Commit(room="game", alarms={"a": alarm}, fence=5))
    await storage.save_session(record)
    moved = StoredAlarm(room="game", name="a", at=2.0, attempt=1)
    refused = [
        storage.claim_session(
            "game", "s1", token_hash=b"h1", new_token_hash=b"h2", expires_at=9e9, fence=4
        ),
        storage.delete_session("game", "s1", fence=4),
        storage.replace_alarm(alarm, moved, fence=4),
    ]
    for call in refused:
        with pytest.raises(OwnershipLostError) as caught:
            await call
        assert (caught.value.token, caught.value.fence) == (4, 5)
    assert await storage.load_session("game", "s1") == record
    assert await storage.load_alarms("game") == [alarm]
    claimed = await storage.claim_session(
        "game", "s1", token_hash=b"h1", new_token_hash=b"h2", expires_at=9e9, fence=5
    )
    assert claimed is not None
    assert claimed.token_hash == b"h2"
    assert await storage.replace_alarm(alarm, moved, fence=5)
    assert await storage.replace_alarm(moved, None)  # unfenced
    await storage.delete_session("game", "s1", fence=5)
    assert await storage.load_session("game", "s1") is None


async def test_a_deposed_owner_does_not_spend_a_resume_token(
    node_a: tuple[Rooms[CounterRoom], int], redis: coredis.Redis[bytes], storage: RedisStorage
) -> None:
    """A resume that reaches an owner whose room was taken over is refused by the fence:
    its client gets 1012, the room stops there, and the token still resumes the session."""
    rooms, port = node_a
    with trio.fail_after(PATIENCE):
        async with open_raw(port, "/rooms/game/websocket?resume=") as client:
            session = orjson.loads(await client.receive_text())["$session"]
            assert (await client.receive_json())["type"] == "welcome"
        await rooms.wait_statistics(lambda stats: stats.sessions == 0)
        await redis.incr(b"trio_rooms:fence:game")  # what a newer acquisition does
        token = session["token"]
        async with open_raw(port, f"/rooms/game/websocket?resume={token}") as client:
            assert await _until_close(client) == [(CLOSE, 1012)]
        await rooms.wait_statistics(lambda stats: stats.rooms == 0)
    parts = tokens.split(token)
    assert parts is not None
    record = await storage.load_session("game", parts[0])
    assert record is not None
    assert tokens.verify(parts[1], record.token_hash, record.expires_at)


async def test_a_write_after_the_room_was_fenced_off_says_who_owns_it(
    node_a: tuple[Rooms[CounterRoom], int], redis: coredis.Redis[bytes]
) -> None:
    """Once a commit was refused by the fence, the room's next write raises
    OwnershipLostError (another node may own the room), not a restart's StorageError."""
    rooms, port = node_a
    with trio.fail_after(PATIENCE):
        async with open_raw(port, "/rooms/game/websocket") as client:
            assert (await client.receive_json())["type"] == "welcome"
            room = await rooms.get("game")
            await redis.incr(b"trio_rooms:fence:game")
            await client.send_text('{"type": "add"}')
            assert await _until_close(client) == [(CLOSE, 1012)]
    with pytest.raises(OwnershipLostError, match="another node may own it now") as caught:
        await room.storage.put("late", 1)
    assert "restarting" not in str(caught.value)
