"""Durable session data and resume: after a drop, an eviction and a restart."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import msgpack
import orjson
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import Rooms, RoomsConfig, SqliteStorage, testing
from trio_rooms.storage import MemoryStorage
from trio_rooms.testing import TestClient

from .chat_app import ChatRoom, ClientMsg, Renamed, ServerMsg, SetName, UserJoined, Whisper
from .flaky_storage import FlakyStorage
from .gated_storage import BACKENDS, GatedStorage, make_backend
from .test_backplane_core import _Bus, _Node  # pyright: ignore[reportPrivateUsage] - a bus of one

Client = TestClient[ServerMsg, ClientMsg]


@attrs.frozen
class Info:
    id: str
    token: str
    resumed: bool


async def _session_info(client: Client) -> Info:
    frame = await client.receive_frame()
    assert isinstance(frame, str)
    content = orjson.loads(frame)
    assert list(content) == ["$session"], f"expected the $session frame first, got {frame}"
    info = content["$session"]
    return Info(id=info["id"], token=info["token"], resumed=info["resumed"])


@asynccontextmanager
async def _join(
    rooms: Rooms[ChatRoom], query: str, room: str = "lobby"
) -> AsyncGenerator[tuple[Client, Info]]:
    async with testing.connect(rooms, room, query=query) as client:
        info = await _session_info(client)
        joined = await client.receive()
        assert isinstance(joined, UserJoined)
        assert joined.user_id == info.id
        yield client, info


async def _rename(client: Client, name: str) -> None:
    client.send(SetName(name=name))
    renamed = await client.receive()
    assert isinstance(renamed, Renamed)  # sent after update() returned


async def test_a_plain_connection_gets_no_session_frame(rooms: Rooms[ChatRoom]) -> None:
    """Without ?resume the wire is exactly websocket-do's: the first frame is the room's."""
    async with testing.connect(rooms, "lobby") as client:
        assert isinstance(await client.receive(), UserJoined)


async def test_resume_after_a_dropped_connection(rooms: Rooms[ChatRoom]) -> None:
    """The token brings back the same id and the stored data, with a new token."""
    async with _join(rooms, "resume=&name=ann") as (client, first):
        assert not first.resumed
        await _rename(client, "anna")
    async with _join(rooms, f"resume={first.token}") as (client, second):
        assert second == Info(id=first.id, token=second.token, resumed=True)
        assert second.token != first.token
        client.send(Whisper(text="who am i"))
        reply = await client.receive()
        assert getattr(reply, "name", None) == "anna"


@pytest.mark.parametrize("bad", ["", "garbage", "x.y", "nosuchsession." + "a" * 43])
async def test_an_invalid_token_gets_a_fresh_session(rooms: Rooms[ChatRoom], bad: str) -> None:
    """An unknown or malformed token starts a new session, never anyone else's."""
    async with _join(rooms, "resume=&name=ann") as (_, first):
        pass
    async with _join(rooms, f"resume={bad}&name=bob") as (_, info):
        assert not info.resumed
        assert info.id != first.id


async def test_a_token_is_single_use(rooms: Rooms[ChatRoom]) -> None:
    """The token of a resume is rotated: the old one no longer works."""
    async with _join(rooms, "resume=") as (_, first):
        pass
    async with _join(rooms, f"resume={first.token}") as (_, second):
        assert second.resumed
    async with _join(rooms, f"resume={first.token}") as (_, third):
        assert not third.resumed
        assert third.id != first.id


async def test_a_token_is_bound_to_its_room(rooms: Rooms[ChatRoom]) -> None:
    """A token from one room starts a fresh session in another."""
    async with _join(rooms, "resume=", room="red") as (_, red):
        pass
    async with _join(rooms, f"resume={red.token}", room="blue") as (_, blue):
        assert not blue.resumed
        assert blue.id != red.id


async def test_an_expired_token_gets_a_fresh_session() -> None:
    """After the resume window the token no longer resumes."""
    storage = MemoryStorage()
    async with trio_rooms.open_rooms(ChatRoom, storage=storage) as rooms:
        async with _join(rooms, "resume=") as (_, first):
            pass
        record = await storage.load_session("lobby", first.id)
        assert record is not None
        await storage.save_session(attrs.evolve(record, expires_at=0.0))
        async with _join(rooms, f"resume={first.token}") as (_, again):
            assert not again.resumed


async def test_resuming_a_connected_session_takes_it_over(rooms: Rooms[ChatRoom]) -> None:
    """The old connection is closed with 4001; the new one has the session."""
    async with (
        _join(rooms, "resume=") as (old, first),
        _join(rooms, f"resume={first.token}") as (_, second),
    ):
        assert second.resumed
        with pytest.raises(trio_rooms.ConnectionClosedError) as closed:
            await _drain(old)
        assert closed.value.code == 4001
        room = await rooms.get("lobby")
        assert list(room.sessions) == [first.id]


async def _drain(client: Client) -> None:
    while True:
        await client.receive_frame()


async def test_resume_after_the_room_was_evicted(autojump_clock: trio.testing.MockClock) -> None:
    """A room evicted and created again still resumes its sessions, and its state is back."""
    async with trio_rooms.open_rooms(ChatRoom, config=RoomsConfig(room_idle_timeout=5)) as rooms:
        async with _join(rooms, "resume=") as (client, first):
            await _rename(client, "carol")
            room = await rooms.get("lobby")
            await room.storage.put("topic", ["trio", "rooms"])
        await room.stopped.wait()
        async with _join(rooms, f"resume={first.token}") as (client, second):
            assert second.resumed
            again = await rooms.get("lobby")
            assert again is not room
            assert await again.storage.get("topic", list[str]) == ["trio", "rooms"]
            client.send(Whisper(text="me?"))
            assert getattr(await client.receive(), "name", None) == "carol"


async def test_resume_after_a_restart_on_the_same_sqlite_file(tmp_path: Path) -> None:
    """A new Rooms on the same SQLite file resumes the session with its data."""
    path = tmp_path / "rooms.db"
    async with (
        trio_rooms.open_rooms(ChatRoom, storage=SqliteStorage(path)) as rooms,
        _join(rooms, "resume=&name=dan") as (client, first),
    ):
        await _rename(client, "daniel")
    async with (
        trio_rooms.open_rooms(ChatRoom, storage=SqliteStorage(path)) as rooms,
        _join(rooms, f"resume={first.token}") as (client, second),
    ):
        assert second.resumed
        assert second.id == first.id
        client.send(Whisper(text="me?"))
        assert getattr(await client.receive(), "name", None) == "daniel"


async def test_the_wire_format_is_kept_on_resume(rooms: Rooms[ChatRoom]) -> None:
    """A session created in msgpack stays msgpack when resumed."""
    async with testing.connect(rooms, "lobby", format="msgpack", query="resume=") as client:
        frame = await client.receive_frame()
        assert isinstance(frame, bytes)
        token = msgpack.unpackb(frame)["$session"]["token"]
    room = await rooms.get("lobby")
    async with testing.connect(rooms, "lobby", format="msgpack", query=f"resume={token}") as client:
        await client.receive_frame()
        (session,) = room.sessions.values()
        assert session.format == "msgpack"


async def test_a_failing_update_reaches_on_error_and_restarts_the_room(tmp_path: Path) -> None:
    """update() raising StorageError goes to on_error; the room restarts, closing with 1011."""
    storage = FlakyStorage()
    async with trio_rooms.open_rooms(ChatRoom, storage=storage) as rooms:
        with trio.fail_after(10):
            async with testing.connect(rooms, "lobby") as client:
                await client.receive()
                room = await rooms.get("lobby")
                storage.fail = True
                client.send(SetName(name="never stored"))
                client.send(Whisper(text="not handled: the room is restarting"))
                with pytest.raises(trio_rooms.ConnectionClosedError) as closed:
                    await client.receive()
                assert (closed.value.code, closed.value.reason) == (1011, "storage failed")
            assert [type(error) for error in room.errors] == [trio_rooms.StorageError]
            storage.fail = False
            assert await rooms.get("lobby") is not room  # made anew on next use


# ------------------------------------------------- writes of a session resumed elsewhere


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def test_a_closing_session_cannot_write_back_the_token_its_resumer_spent(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A close-time write that lands after a resume is refused: the resumer keeps its data."""
    storage = GatedStorage(make_backend(backend, request, tmp_path))

    async def leave(rooms: Rooms[ChatRoom], task_status: trio.TaskStatus[Info]) -> None:
        async with _join(rooms, "resume=&name=old") as (_, info):
            storage.hold_next_write(info.id)
            task_status.started(info)
        # Returns once the session ended: after its held write was let go.

    async with (
        trio_rooms.open_rooms(ChatRoom, storage=storage) as rooms,
        trio.open_nursery() as nursery,
    ):
        first: Info = await nursery.start(leave, rooms)
        held = storage.held
        assert held is not None
        await held.arrived.wait()  # closing, out of the room, its last write in flight
        room = await rooms.get("lobby")
        assert first.id not in room.sessions
        async with testing.connect(rooms, "lobby", query=f"resume={first.token}") as client:
            # Admitted, so its token was spent, while the old write is still held; its
            # first frame waits for that write, as a room commits in order.
            await rooms.wait_statistics(lambda stats: stats.sessions == 1)
            held.release()
            await held.done.wait()
            assert held.result is False  # refused, not written
            second = await _session_info(client)
            assert second.resumed
            assert isinstance(await client.receive(), UserJoined)
            await _rename(client, "new")
        async with _join(rooms, f"resume={first.token}") as (_, third):
            assert not third.resumed  # the spent token stayed spent
        async with _join(rooms, f"resume={second.token}") as (client, fourth):
            assert fourth.resumed
            client.send(Whisper(text="me?"))
            assert getattr(await client.receive(), "name", None) == "new"


@asynccontextmanager
async def _two_nodes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncGenerator[tuple[Rooms[ChatRoom], Rooms[ChatRoom]]]:
    """Two Rooms on one storage, as two nodes would be, each running a copy of the room.

    Each has a backplane of its own (no broadcasts between them): nodes with copies of
    one room are the backplane mode; without one, the copy started last would be the
    room's only writer and the other's writes refused (tests/test_writer_fence.py).
    """
    first = make_backend(backend, request, tmp_path)
    second = first if backend == "memory" else make_backend(backend, request, tmp_path)
    async with (
        trio_rooms.open_rooms(ChatRoom, storage=first, backplane=_Node(_Bus())) as node_a,
        trio_rooms.open_rooms(ChatRoom, storage=second, backplane=_Node(_Bus())) as node_b,
    ):
        yield node_a, node_b


async def test_a_session_resumed_on_another_node_ends_at_its_next_update(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """update() of a session resumed elsewhere raises SessionClosedError, stores nothing, 4001.

    The default on_error logs that expected end of the race at INFO, without a traceback.
    """
    caplog.set_level(logging.INFO, logger="trio_rooms")
    async with _two_nodes(backend, request, tmp_path) as (node_a, node_b):
        async with (
            _join(node_a, "resume=&name=ann") as (old, first),
            _join(node_b, f"resume={first.token}") as (new, second),
        ):
            assert second.resumed
            old.send(SetName(name="stale"))
            with pytest.raises(trio_rooms.ConnectionClosedError) as closed:
                await _drain(old)
            assert (closed.value.code, closed.value.reason) == (4001, "session resumed elsewhere")
            room_a = await node_a.get("lobby")
            assert [type(error) for error in room_a.errors] == [trio_rooms.SessionClosedError]
            taken_over = [r for r in caplog.records if "resumed on another connection" in r.message]
            assert [(r.levelno, r.exc_info) for r in taken_over] == [(logging.INFO, None)]
            assert not room_a.sessions
            new.send(Whisper(text="me?"))
            assert getattr(await new.receive(), "name", None) == "ann"
        async with _join(node_a, f"resume={second.token}") as (client, third):
            assert third.resumed
            client.send(Whisper(text="me?"))
            assert getattr(await client.receive(), "name", None) == "ann"


async def test_a_session_resumed_on_another_node_writes_nothing_when_it_closes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The old session's close does not bring back the spent token or its own data."""
    async with _two_nodes(backend, request, tmp_path) as (node_a, node_b):
        async with _join(node_a, "resume=&name=ann") as (old, first):
            async with _join(node_b, f"resume={first.token}") as (new, second):
                await _rename(new, "anna")
            old.send(Whisper(text="still here"))  # it does not know yet
            assert getattr(await old.receive(), "name", None) == "ann"
        room_a = await node_a.get("lobby")
        await room_a.wait_closed(1)
        async with _join(node_b, f"resume={first.token}") as (_, third):
            assert not third.resumed
        async with _join(node_b, f"resume={second.token}") as (client, fourth):
            assert fourth.resumed
            client.send(Whisper(text="me?"))
            assert getattr(await client.receive(), "name", None) == "anna"
