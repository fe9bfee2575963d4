"""Attacks on resume tokens, single node, over real sockets and a real SQLite file.

A resume whose new token never reached its client must leave the old one valid: the
room stopping, or the client leaving, while its token is being spent. Bad tokens of
every shape get a fresh session and log nothing; a burst of resumes all resume.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import Rooms, RoomsConfig, SqliteStorage
from trio_rooms.storage import SessionRecord, Storage

from .chat_app import ChatRoom
from .delegating_storage import DelegatingStorage
from .members import Member, close_all, join_at_once
from .servers import Transport, start_server
from .sockets import (
    CLOSE,
    RawClient,
    ServerFrame,
    client_frame,
    close_payload,
    connect_socket,
    handshake_request,
    raw_handshake,
)


class HeldClaims(DelegatingStorage):
    """Holds the next claim of a token until the test lets it go."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.arrived = trio.Event()
        self.release = trio.Event()
        self._armed = False

    def hold_next_claim(self) -> None:
        self._armed = True

    async def claim_session(
        self,
        room: str,
        session_id: str,
        *,
        token_hash: bytes,
        new_token_hash: bytes,
        expires_at: float,
        fence: int = 0,
    ) -> SessionRecord | None:
        claimed = await super().claim_session(
            room,
            session_id,
            token_hash=token_hash,
            new_token_hash=new_token_hash,
            expires_at=expires_at,
            fence=fence,
        )
        if self._armed:  # spent: the token is the new one's from here on
            self._armed = False
            self.arrived.set()
            await self.release.wait()
        return claimed


@asynccontextmanager
async def _serving(
    storage: Storage, transport: Transport, config: RoomsConfig | None = None
) -> AsyncGenerator[tuple[Rooms[ChatRoom], int]]:
    async with (
        trio_rooms.open_rooms(ChatRoom, storage=storage, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        port = await start_server(nursery, transport, rooms)
        yield rooms, port
        nursery.cancel_scope.cancel()


async def _victim(path: Path, transport: Transport) -> Member:
    """A session of the lobby on ``path``, renamed durably, its connection closed."""
    async with _serving(SqliteStorage(path), transport) as (_, port):
        victim = await Member.join(port, "resume=&name=victim")
        await victim.send({"type": "setName", "name": "renamed"})
        while (await victim.receive())["type"] != "renamed":  # durable once it is heard
            pass
        await victim.aclose()
    return victim


async def _resumes(path: Path, transport: Transport, token: str, session_id: str) -> None:
    """``token`` still resumes ``session_id`` with its data, after a restart on ``path``."""
    async with (
        _serving(SqliteStorage(path), transport) as (_, port),
        await Member.join(port, f"resume={token}") as back,
    ):
        assert back.resumed, back.session
        assert back.session_id == session_id
        assert await back.name() == "renamed"


async def _resume_to_the_end(port: int, token: str, frames: list[ServerFrame]) -> None:
    """Ask to resume with ``token``; keep every frame the server sends until it hangs up."""
    stream = await connect_socket(port)
    try:
        client = await raw_handshake(stream, f"/rooms/lobby/websocket?resume={token}")
        frames.extend(await client.receive_until_eof())
    finally:
        await stream.aclose()


async def _release_on_close(member: Member, storage: HeldClaims) -> None:
    """Let the held claim go once ``member`` was closed: the room is stopping then."""
    assert await member.client.close_code() == 1001
    storage.release.set()


async def test_a_resume_refused_by_a_stopping_room_keeps_the_token_valid(
    transport: Transport, tmp_path: Path
) -> None:
    """The room stops while the token is spent: 1001, and the token resumes after a restart."""
    path = tmp_path / "rooms.db"
    victim = await _victim(path, transport)
    storage = HeldClaims(SqliteStorage(path))
    frames: list[ServerFrame] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as server:
            async with trio.open_nursery() as clients:  # noqa: SIM117 - they outlive the rooms
                async with trio_rooms.open_rooms(ChatRoom, storage=storage) as rooms:
                    port = await start_server(server, transport, rooms)
                    bystander = await Member.join(port, "name=bystander")
                    clients.start_soon(_release_on_close, bystander, storage)
                    storage.hold_next_claim()
                    clients.start_soon(_resume_to_the_end, port, victim.token, frames)
                    await storage.arrived.wait()
                # Shut down with the claim held: the bystander's 1001 lets it go.
            await bystander.aclose()
            server.cancel_scope.cancel()
    assert frames, "the resumer was sent nothing"
    assert frames[-1].opcode == CLOSE
    assert frames[-1].close_code == 1001
    assert all(b"$session" not in frame.payload for frame in frames), frames
    await _resumes(path, transport, victim.token, victim.session_id)


async def test_a_resumer_that_leaves_while_its_token_is_spent_keeps_it_valid(
    transport: Transport,
    tmp_path: Path,
) -> None:
    """The client hangs up while its token is spent: the token still resumes the session."""
    path = tmp_path / "rooms.db"
    victim = await _victim(path, transport)
    storage = HeldClaims(SqliteStorage(path))
    async with (
        _serving(storage, transport) as (rooms, port),
        await Member.join(port, "name=bystander") as bystander,
    ):
        storage.hold_next_claim()
        stream = await connect_socket(port)
        await stream.send_all(handshake_request(f"/rooms/lobby/websocket?resume={victim.token}"))
        await storage.arrived.wait()
        RawClient(stream).reset()
        # The reset is on the server's socket already (loopback): once every task
        # waits, the server's reader has read it.
        await trio.testing.wait_all_tasks_blocked()
        storage.release.set()
        await bystander.say("still-here")
        assert await bystander.chats("still-here") == "still-here"
        assert rooms.statistics().sessions == 1
        async with await Member.join(port, f"resume={victim.token}") as back:
            assert back.resumed, back.session
            assert back.session_id == victim.session_id
            assert await back.name() == "renamed"


async def test_a_resume_while_the_original_is_open_takes_it_over_once(
    transport: Transport, tmp_path: Path
) -> None:
    """The original gets 4001, the resumer has its data; the room holds the session once."""
    async with _serving(SqliteStorage(tmp_path / "rooms.db"), transport) as (rooms, port):
        original = await Member.join(port, "resume=&name=original")
        async with original, await Member.join(port, f"resume={original.token}") as resumer:
            assert resumer.resumed
            assert resumer.session_id == original.session_id
            assert await original.client.close_code() == 4001
            assert await resumer.name() == "original"
            room = await rooms.get("lobby")
            assert list(room.sessions) == [original.session_id]
            assert rooms.statistics().sessions == 1
            # The original's close wrote nothing over the resumer's record.
            await resumer.send({"type": "setName", "name": "resumer"})
            while (await resumer.receive())["type"] != "renamed":
                pass
        async with await Member.join(port, f"resume={resumer.token}") as back:
            assert back.resumed
            assert await back.name() == "resumer"


async def test_a_resume_after_an_explicit_close_gets_the_session_back(
    transport: Transport, tmp_path: Path
) -> None:
    """A client that closed with 1000 resumes within the window, with its data."""
    async with _serving(SqliteStorage(tmp_path / "rooms.db"), transport) as (rooms, port):
        async with await Member.join(port, "resume=&name=leaver") as leaver:
            await leaver.client.send(client_frame(CLOSE, close_payload(1000)))
            assert await leaver.client.close_code() == 1000
        room = await rooms.get("lobby")
        await room.wait_closed(1)
        async with await Member.join(port, f"resume={leaver.token}") as back:
            assert back.resumed
            assert back.session_id == leaver.session_id
            assert await back.name() == "leaver"


def _bad_tokens(victim: Member) -> list[str]:
    """Tokens of every wrong shape, URL-encoded, each next to the victim's real one."""
    session_id, _, secret = victim.token.partition(".")
    forged = f"{session_id}.{'A' * len(secret)}"
    return [
        forged,
        victim.token[:-1],  # truncated
        f"{session_id}.",
        f".{secret}",
        ".",
        session_id,
        victim.token + "x" * 300,  # oversized
        "x" * 5000,
        f"{session_id}.{secret[:-1]}é",  # non-ASCII
        "é" * 40 + "." + "ü" * 40,
        "\x00" + victim.token,
        victim.token.replace(".", "\n"),
        f"../../{session_id}.{secret}",
        f"{session_id}*.{secret}",
    ]


@pytest.mark.parametrize("index", range(14))
async def test_a_bad_token_gets_a_fresh_session_and_logs_nothing(
    transport: Transport, tmp_path: Path, caplog: pytest.LogCaptureFixture, index: int
) -> None:
    """Forged, truncated, oversized, non-ASCII or odd tokens: a fresh session, room unharmed."""
    async with _serving(SqliteStorage(tmp_path / "rooms.db"), transport) as (rooms, port):
        async with await Member.join(port, "resume=&name=victim") as victim:
            bad = _bad_tokens(victim)[index]
            with caplog.at_level(logging.WARNING, logger="trio_rooms"):
                async with await Member.join(port, f"resume={quote(bad)}&name=bad") as member:
                    assert not member.resumed
                    assert member.session_id != victim.session_id
                    assert await member.name() == "bad"
                    await member.say("after-bad")
                    assert await victim.chats("after-bad") == "after-bad"
            assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
            assert await victim.name() == "victim"
        async with await Member.join(port, f"resume={victim.token}") as back:
            assert back.resumed
        assert rooms.statistics().rooms == 1


async def test_a_token_of_another_room_gets_a_fresh_session(
    transport: Transport, tmp_path: Path
) -> None:
    """A token is bound to its room: elsewhere it starts a fresh session and is not spent."""
    async with _serving(SqliteStorage(tmp_path / "rooms.db"), transport) as (_, port):
        victim = await Member.join(port, "resume=&name=victim")
        await victim.aclose()
        stream = await connect_socket(port)
        try:
            client = await raw_handshake(stream, f"/rooms/other/websocket?resume={victim.token}")
            other = Member(client, None)
            first = await other.receive()
            session = first["$session"]
            assert isinstance(session, dict)
            assert session["resumed"] is False
            assert session["id"] != victim.session_id
        finally:
            await stream.aclose()
        async with await Member.join(port, f"resume={victim.token}") as back:
            assert back.resumed


async def test_a_burst_of_200_resumes_of_distinct_tokens_all_resume(
    transport: Transport, tmp_path: Path
) -> None:
    """200 sessions resumed at once: each gets its own session back, none is lost."""
    config = RoomsConfig(max_connections_per_address=400)  # all of them from 127.0.0.1
    async with _serving(SqliteStorage(tmp_path / "rooms.db"), transport, config) as (rooms, port):
        first = await join_at_once([port] * 200, "resume=&name=first")
        await close_all(first)
        room = await rooms.get("lobby")
        while room.sessions:  # each close is an event of the room: wait for the last
            await room.wait_closed(200)
            await trio.testing.wait_all_tasks_blocked()
        tokens = {member.token: member.session_id for member in first}
        members: list[Member] = []
        async with trio.open_nursery() as nursery:

            async def resume(token: str) -> None:
                members.append(await Member.join(port, f"resume={token}"))

            for token in tokens:
                nursery.start_soon(resume, token)
        try:
            assert all(member.resumed for member in members)
            assert sorted(member.session_id for member in members) == sorted(tokens.values())
            assert rooms.statistics().sessions == 200
        finally:
            await close_all(members)
