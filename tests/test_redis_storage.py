"""RedisStorage on a real redis-server: expiry, key layout, failures, recovery and resume.

The Storage contract itself runs on Redis in test_storage.py. Faults are real: the
server is killed, stopped (SIGSTOP), restarted on its port, or reached through a small
TCP proxy here that can make its connections go silent or stop accepting them.
"""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager, contextmanager, suppress

import attrs
import coredis
import orjson
import pytest
import trio

import trio_rooms
from trio_rooms import ConnectionClosedError, RoomNameError, Rooms, StorageError, testing
from trio_rooms.storage import Commit, SessionRecord
from trio_rooms.storage.redis import RedisStorage
from trio_rooms.testing import TestClient

from .chat_app import ChatRoom, ClientMsg, Renamed, ServerMsg, SetName, UserJoined, Whisper
from .redis_server import RedisServer
from .silent_proxy import SilentProxy

#: Short, so that the fault tests wait for fractions of a second.
TIMEOUT = 0.3
#: What a test allows beyond TIMEOUT before it calls the bound broken.
SLACK = 1.0

Client = TestClient[ServerMsg, ClientMsg]


def _record(
    session_id: str = "s1", *, data: bytes = b'{"n":1}', expires_at: float = 9e9
) -> SessionRecord:
    return SessionRecord(
        room="lobby",
        session_id=session_id,
        data=data,
        wire="json",
        token_hash=b"h",
        expires_at=expires_at,
    )


@pytest.fixture
async def storage(redis_server: RedisServer) -> AsyncGenerator[RedisStorage]:
    backend = RedisStorage(redis_server.url, timeout=TIMEOUT)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncGenerator[coredis.Redis[bytes]]:
    """A plain client, to look at what the storage wrote."""
    client = coredis.Redis.from_url(redis_server.url)
    async with client:
        yield client


def _operations(storage: RedisStorage) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every operation of the Storage protocol after open, by name."""
    return {
        "load_session": lambda: storage.load_session("lobby", "s1"),
        "save_session": lambda: storage.save_session(_record()),
        "claim_session": lambda: storage.claim_session(
            "lobby", "s1", token_hash=b"h", new_token_hash=b"h2", expires_at=9e9
        ),
        "replace_session": lambda: storage.replace_session(_record(), expected_token_hash=b"h"),
        "delete_session": lambda: storage.delete_session("lobby", "s1"),
        "get": lambda: storage.get("lobby", "k"),
        "put": lambda: storage.put("lobby", "k", b"v"),
        "delete": lambda: storage.delete("lobby", "k"),
        "commit": lambda: storage.commit(Commit(room="lobby", values={"k": b"v"}, fence=1)),
    }


async def _all_work(storage: RedisStorage) -> None:
    with trio.fail_after(5):
        await storage.put("lobby", "k", b"again")
        assert await storage.get("lobby", "k") == b"again"
        await storage.save_session(_record())
        assert await storage.load_session("lobby", "s1") == _record()


# ------------------------------------------------------------------------ expiry


async def test_a_session_key_expires_at_the_records_expires_at(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """The session key carries a Redis expiry at expires_at; room values carry none."""
    expires_at = time.time() + 1000
    await storage.save_session(_record(expires_at=expires_at))
    await storage.put("lobby", "history", b"[]")
    ttl_ms = await redis.pttl(b"trio_rooms:session:lobby:s1")
    assert 990_000 < ttl_ms <= 1_000_000
    assert await redis.pttl(b"trio_rooms:state:lobby:history") == -1  # no expiry
    loaded = await storage.load_session("lobby", "s1")
    assert loaded == _record(expires_at=expires_at)  # every field, the float exactly


async def test_an_expiring_session_vanishes_on_its_own(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """Redis itself removes a record once its expires_at has passed (and says so)."""
    key = b"trio_rooms:session:lobby:s1"
    await redis.config_set({"notify-keyspace-events": "Ex"})
    async with redis.pubsub(channels=["__keyevent@0__:expired"]) as expired:
        await storage.save_session(_record(expires_at=time.time() + 0.2))
        assert await storage.load_session("lobby", "s1") is not None
        with trio.fail_after(5):
            async for message in expired:
                if message["data"] == key:
                    break
    assert await redis.exists([key]) == 0
    assert await storage.load_session("lobby", "s1") is None


async def test_claims_and_replaces_move_the_keys_expiry(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """The compare-and-sets set the Redis expiry of the record they write, like a save."""
    key = b"trio_rooms:session:lobby:s1"
    now = time.time()
    assert await storage.replace_session(_record(expires_at=now + 1000), expected_token_hash=b"h")
    assert 990_000 < await redis.pttl(key) <= 1_000_000
    claimed = await storage.claim_session(
        "lobby", "s1", token_hash=b"h", new_token_hash=b"h2", expires_at=now + 2000
    )
    assert claimed is not None
    assert 1_990_000 < await redis.pttl(key) <= 2_000_000
    assert await storage.load_session("lobby", "s1") == claimed
    past = attrs.evolve(_record(expires_at=now - 1), token_hash=b"h2")
    assert await storage.replace_session(past, expected_token_hash=b"h2")
    assert await redis.exists([key]) == 0  # written already expired: gone, as with a save
    with pytest.raises(ValueError, match="finite"):
        await storage.replace_session(_record(expires_at=math.inf), expected_token_hash=b"h")


@pytest.mark.parametrize("size", [0, 31, 32, 255, 256, 65_535, 65_536, 70_000])
async def test_the_compare_and_sets_find_the_token_hash_in_records_of_any_size(
    storage: RedisStorage, size: int
) -> None:
    """The scripts read the hash past data and wire of every msgpack length encoding."""
    token = bytes(range(32))
    record = attrs.evolve(_record(data=b"d" * size), wire="w" * min(size, 300), token_hash=token)
    await storage.save_session(record)
    assert not await storage.replace_session(record, expected_token_hash=token[:-1] + b"x")
    assert await storage.replace_session(record, expected_token_hash=token)
    assert (
        await storage.claim_session(
            "lobby", "s1", token_hash=token[1:], new_token_hash=b"h2", expires_at=9e9
        )
        is None
    )
    claimed = await storage.claim_session(
        "lobby", "s1", token_hash=token, new_token_hash=b"h2", expires_at=9e9
    )
    assert claimed == attrs.evolve(record, token_hash=b"h2")
    assert await storage.load_session("lobby", "s1") == claimed


async def test_the_compare_and_sets_refuse_a_record_they_cannot_read(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """Something else under a session key fails a claim or replace and stays as it was."""
    key = b"trio_rooms:session:lobby:s1"
    for foreign in [b"\xc1 not msgpack", b"\x95\x02", b"\x95\x01\xc4\x01"]:
        await redis.set(key, foreign)
        with pytest.raises(StorageError, match="unexpected session record"):
            await storage.replace_session(_record(), expected_token_hash=b"h")
        with pytest.raises(StorageError, match="unexpected session record"):
            await storage.claim_session(
                "lobby", "s1", token_hash=b"h", new_token_hash=b"h2", expires_at=9e9
            )
        assert await redis.get(key) == foreign


@pytest.mark.parametrize("expires_at", [0.0, -5.0, 1.0, "a second ago"])
async def test_a_record_saved_already_expired_removes_the_session(
    storage: RedisStorage, redis: coredis.Redis[bytes], expires_at: float | str
) -> None:
    """Saving a record whose expires_at has passed leaves no record behind, at once."""
    past = time.time() - 1 if expires_at == "a second ago" else float(expires_at)
    await storage.save_session(_record())
    await storage.save_session(_record(expires_at=past))
    assert await storage.load_session("lobby", "s1") is None
    assert await redis.exists([b"trio_rooms:session:lobby:s1"]) == 0


async def test_an_infinite_expiry_is_refused(storage: RedisStorage) -> None:
    """A record must expire at a finite time."""
    for never in (math.inf, math.nan):
        with pytest.raises(ValueError, match="finite"):
            await storage.save_session(_record(expires_at=never))


# -------------------------------------------------------------------------- keys

ADVERSARIAL_NAMES = [
    "",
    ":",
    "s1",
    "s1:",
    ":s1",
    "lobby:s1",
    "session:lobby:s1",
    "state:lobby:s1",
    "trio_rooms:session:lobby:s1",
    "\x00",
    "*",
    "é",
    "\ud800",  # a lone surrogate: not even valid UTF-8 on its own
    "k" * 5000,
]


async def test_keys_of_kinds_rooms_and_names_never_collide(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """Session ids and user keys that look like other keys each get a key of their own."""
    rooms = ["lobby", "lobby.s1", "s1"]
    for room in rooms:
        for name in ADVERSARIAL_NAMES:
            mine = f"{room} {name!r}".encode("utf-8", "surrogatepass")
            await storage.save_session(attrs.evolve(_record(name, data=b"S" + mine), room=room))
            await storage.put(room, name, b"V" + mine)
    for room in rooms:
        for name in ADVERSARIAL_NAMES:
            mine = f"{room} {name!r}".encode("utf-8", "surrogatepass")
            record = await storage.load_session(room, name)
            assert record is not None
            assert (record.room, record.session_id, record.data) == (room, name, b"S" + mine)
            assert await storage.get(room, name) == b"V" + mine
    keys = await redis.keys()
    assert len(keys) == 2 * len(rooms) * len(ADVERSARIAL_NAMES)
    assert all(key.startswith((b"trio_rooms:session:", b"trio_rooms:state:")) for key in keys)
    for name in ADVERSARIAL_NAMES:
        await storage.delete("lobby", name)
        assert await storage.get("lobby", name) is None
        assert await storage.load_session("lobby", name) is not None  # another kind
        assert await storage.get("s1", name) is not None  # another room


async def test_a_room_name_outside_the_pattern_is_refused(storage: RedisStorage) -> None:
    """A name with ':' could make keys ambiguous, so no operation accepts one."""
    for room in ["lobby:s1", "", "x" * 129, "l\u00f6bby"]:
        with pytest.raises(RoomNameError):
            await storage.get(room, "k")
        with pytest.raises(RoomNameError):
            await storage.save_session(attrs.evolve(_record(), room=room))


async def test_storages_with_different_prefixes_share_a_redis_apart(
    redis_server: RedisServer,
) -> None:
    """Two prefixes on one Redis database see only their own sessions and values."""
    first = RedisStorage(redis_server.url, prefix="app1:")
    second = RedisStorage(redis_server.url, prefix="app2:")
    await first.open()
    await second.open()
    try:
        await first.put("lobby", "k", b"one")
        await first.save_session(_record())
        assert await second.get("lobby", "k") is None
        assert await second.load_session("lobby", "s1") is None
        await second.put("lobby", "k", b"two")
        assert await first.get("lobby", "k") == b"one"
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_unreadable_record_raises_storage_error(
    storage: RedisStorage, redis: coredis.Redis[bytes]
) -> None:
    """Something else under a session key is reported, not returned as a record."""
    await redis.set(b"trio_rooms:session:lobby:s1", b"\xc1 not msgpack")
    with pytest.raises(StorageError, match="unreadable record"):
        await storage.load_session("lobby", "s1")
    await redis.set(b"trio_rooms:session:lobby:s1", b"\x93\x02\xa1x\xa1y")  # [2, "x", "y"]
    with pytest.raises(StorageError, match="unexpected record"):
        await storage.load_session("lobby", "s1")


# ------------------------------------------------------------------------ faults


async def test_every_operation_fails_fast_while_redis_is_down(
    storage: RedisStorage, redis_server: RedisServer
) -> None:
    """With Redis killed, each operation raises StorageError (the cause chained) in time."""
    redis_server.kill()
    for name, operation in _operations(storage).items():
        with trio.fail_after(TIMEOUT + SLACK), pytest.raises(StorageError) as raised:
            await operation()
        assert isinstance(raised.value.__cause__, Exception), name


async def test_every_operation_fails_within_the_timeout_while_redis_hangs(
    storage: RedisStorage, redis_server: RedisServer
) -> None:
    """With Redis stopped (SIGSTOP), each operation gives up after ``timeout``; then works."""
    process = redis_server.process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        for name, operation in _operations(storage).items():
            with (
                trio.fail_after(TIMEOUT + SLACK),
                pytest.raises(StorageError, match=f"within {TIMEOUT} s") as raised,
            ):
                await operation()
            assert isinstance(raised.value.__cause__, trio.TooSlowError), name
    finally:
        process.send_signal(signal.SIGCONT)
    await _all_work(storage)


async def test_operations_work_again_after_redis_restarts_on_its_port(
    storage: RedisStorage, redis_server: RedisServer
) -> None:
    """No reopen needed: once Redis is back, the next operations connect anew."""
    await storage.put("lobby", "k", b"before")
    redis_server.kill()
    with pytest.raises(StorageError):
        await storage.put("lobby", "k", b"while down")
    redis_server.start()
    await _all_work(storage)
    for _ in range(3):  # and again, with connections made after the first restart
        redis_server.kill()
        with pytest.raises(StorageError):
            await storage.get("lobby", "k")
        redis_server.start()
        await _all_work(storage)


async def test_open_fails_when_redis_is_down_and_a_closed_storage_refuses_work(
    redis_server: RedisServer,
) -> None:
    """open() checks that Redis answers; a storage that is not open raises StorageError."""
    storage = RedisStorage(redis_server.url, timeout=TIMEOUT)
    with pytest.raises(StorageError, match="not open"):
        await storage.get("lobby", "k")
    redis_server.kill()
    with trio.fail_after(TIMEOUT + SLACK), pytest.raises(StorageError, match="PING"):
        await storage.open()
    with pytest.raises(StorageError, match="not open"):
        await storage.get("lobby", "k")
    redis_server.start()
    await storage.open()  # the same object opens again once Redis is there
    await _all_work(storage)
    await storage.aclose()
    with pytest.raises(StorageError, match="not open"):
        await storage.put("lobby", "k", b"v")


def test_bad_arguments_are_refused_at_construction() -> None:
    """A URL of another scheme, or a timeout that is not positive, is a ValueError."""
    with pytest.raises(ValueError, match="redis://"):
        RedisStorage("http://localhost:6379")
    with pytest.raises(ValueError, match="timeout"):
        RedisStorage("redis://localhost", timeout=0)


async def test_a_connection_gone_silent_is_replaced_after_a_timeout(
    redis_server: RedisServer,
) -> None:
    """A timeout drops the pool's connections: one that went silent is not used again."""
    proxy = SilentProxy(target=redis_server.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        storage = RedisStorage(f"redis://127.0.0.1:{proxy.port}/0", timeout=TIMEOUT)
        await storage.open()
        try:
            await storage.put("lobby", "k", b"v")
            proxy.silence()
            with trio.fail_after(TIMEOUT + SLACK), pytest.raises(StorageError, match="within"):
                await storage.get("lobby", "k")
            proxy.speak()  # the silenced connection stays silent, new ones work
            with trio.fail_after(5):
                assert await storage.get("lobby", "k") == b"v"
        finally:
            await storage.aclose()
        nursery.cancel_scope.cancel()


@contextmanager
def _unanswered_connects(port: int) -> Generator[None]:
    """Listen on ``port`` with a full backlog: TCP connects to it hang (SYNs are dropped)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(0)
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            yield
        finally:
            for filler in fillers:
                filler.close()


async def test_connects_cut_by_the_timeout_do_not_use_up_the_pool(
    redis_server: RedisServer,
) -> None:
    """Timeouts during hanging TCP connects, more than the pool has slots, leave it usable."""
    proxy = SilentProxy(target=redis_server.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        url = f"redis://127.0.0.1:{proxy.port}/0?max_connections=2"
        storage = RedisStorage(url, timeout=TIMEOUT)
        await storage.open()
        nursery.cancel_scope.cancel()  # the proxy stops: its connections close
    try:
        with _unanswered_connects(proxy.port):
            for _ in range(5):
                with trio.fail_after(TIMEOUT + SLACK), pytest.raises(StorageError):
                    await storage.get("lobby", "k")
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)  # the same port, answering again
            await _all_work(storage)
            nursery.cancel_scope.cancel()
    finally:
        await storage.aclose()


async def test_cancelling_an_operation_leaves_the_storage_usable(
    storage: RedisStorage, redis_server: RedisServer
) -> None:
    """A caller's own cancel scope cancels the operation, not the storage."""
    process = redis_server.process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        with trio.move_on_after(TIMEOUT / 3) as scope:
            await storage.put("lobby", "k", b"v")
        assert scope.cancelled_caught
    finally:
        process.send_signal(signal.SIGCONT)
    await _all_work(storage)


# ------------------------------------------------------------------------ import


def test_import_trio_rooms_does_not_load_coredis() -> None:
    """``import trio_rooms`` and ``import trio_rooms.storage`` leave coredis unloaded."""
    code = "import sys, trio_rooms, trio_rooms.storage; print('coredis' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_without_coredis_the_import_error_says_what_to_install() -> None:
    """Importing the Redis storage without coredis names the extra to install."""
    code = (
        "import sys; sys.modules['coredis'] = None\n"
        "try:\n"
        "    import trio_rooms.storage.redis\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install trio_rooms[redis]" in result.stdout


# ----------------------------------------------------------------- end to end


@attrs.frozen
class _Info:
    id: str
    token: str
    resumed: bool


@asynccontextmanager
async def _join(rooms: Rooms[ChatRoom], query: str) -> AsyncGenerator[tuple[Client, _Info]]:
    async with testing.connect(rooms, "lobby", query=query) as client:
        frame = await client.receive_frame()
        assert isinstance(frame, str)
        session = orjson.loads(frame)["$session"]
        info = _Info(id=session["id"], token=session["token"], resumed=session["resumed"])
        joined = await client.receive()
        assert isinstance(joined, UserJoined)
        yield client, info


async def test_a_session_resumes_after_a_restart_on_the_same_redis(
    redis_server: RedisServer,
) -> None:
    """A new Rooms on the same Redis resumes the session with its data, and room state."""
    async with (
        trio_rooms.open_rooms(ChatRoom, storage=RedisStorage(redis_server.url)) as rooms,
        _join(rooms, "resume=&name=dan") as (client, first),
    ):
        client.send(SetName(name="daniel"))
        assert isinstance(await client.receive(), Renamed)  # sent after update() returned
        room = await rooms.get("lobby")
        await room.storage.put("topic", ["trio", "redis"])
    async with (
        trio_rooms.open_rooms(ChatRoom, storage=RedisStorage(redis_server.url)) as rooms,
        _join(rooms, f"resume={first.token}") as (client, second),
    ):
        assert second.resumed
        assert second.id == first.id
        client.send(Whisper(text="me?"))
        assert getattr(await client.receive(), "name", None) == "daniel"
        room = await rooms.get("lobby")
        assert await room.storage.get("topic", list[str]) == ["trio", "redis"]


async def test_a_session_resumes_on_another_node_sharing_the_redis(
    redis_server: RedisServer,
) -> None:
    """Two Rooms at once on one Redis: a session left on one resumes on the other."""
    async with (
        trio_rooms.open_rooms(ChatRoom, storage=RedisStorage(redis_server.url)) as node_a,
        trio_rooms.open_rooms(ChatRoom, storage=RedisStorage(redis_server.url)) as node_b,
    ):
        async with _join(node_a, "resume=&name=eve") as (client, first):
            client.send(SetName(name="evelyn"))
            assert isinstance(await client.receive(), Renamed)
        async with _join(node_b, f"resume={first.token}") as (client, second):
            assert second == _Info(id=first.id, token=second.token, resumed=True)
            client.send(Whisper(text="me?"))
            assert getattr(await client.receive(), "name", None) == "evelyn"


async def test_update_fails_within_the_timeout_while_redis_is_down_and_works_after(
    redis_server: RedisServer,
) -> None:
    """update() raises StorageError in bounded time; the room restarts, the session resumes."""
    storage = RedisStorage(redis_server.url, timeout=TIMEOUT)
    async with trio_rooms.open_rooms(ChatRoom, storage=storage) as rooms:
        async with _join(rooms, "resume=&name=fay") as (client, _):
            room = await rooms.get("lobby")
            redis_server.kill()
            with trio.fail_after(TIMEOUT + SLACK):
                client.send(SetName(name="faye"))
                client.send(Whisper(text="still here?"))  # the room is restarting: not handled
                with pytest.raises(ConnectionClosedError) as closed:
                    await client.receive()  # the rename's broadcast never leaves
            assert closed.value.code == 1011
            assert [type(error) for error in room.errors] == [StorageError]
        redis_server.start()  # an empty Redis (no persistence here): a fresh session
        with trio.fail_after(5):
            async with _join(rooms, "resume=&name=fay") as (client, fresh):
                assert await rooms.get("lobby") is not room  # made anew
                client.send(SetName(name="fayette"))
                assert await client.receive() == Renamed(user_id=fresh.id, name="fayette")
