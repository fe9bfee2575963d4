"""The demo's durable state: history and sessions outlive connections and restarts."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio

from trio_rooms import SqliteStorage, Storage
from trio_rooms.demo.app import serve_demo

from ..flaky_storage import FlakyStorage
from .client import ChatClient, Json, connect


@asynccontextmanager
async def _demo(storage: Storage) -> AsyncGenerator[int]:
    """The demo on ``storage`` while the block runs; yields its port."""
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(partial(serve_demo, storage=storage), "127.0.0.1", 0)
        yield port
        nursery.cancel_scope.cancel()


async def _say(client: ChatClient, text: str) -> None:
    await client.send({"type": "sendChat", "text": text})
    assert (await client.receive_type("chat"))["text"] == text


async def _rename(client: ChatClient, name: str) -> None:
    await client.send({"type": "setName", "name": name})
    assert (await client.receive_type("renamed"))["name"] == name


async def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    """A demo started again on the same SQLite file sends the same history."""
    db = tmp_path / "demo.db"
    async with _demo(SqliteStorage(db)) as port, connect(port, "lobby", "alice") as alice:
        await alice.join()
        for i in range(3):
            await _say(alice, f"before {i}")
    async with _demo(SqliteStorage(db)) as port:
        async with connect(port, "lobby", "bob") as bob:
            _, history = await bob.join()
            await _say(bob, "after")
        async with connect(port, "other", "carol") as carol:
            _, elsewhere = await carol.join()
    messages = [(chat["name"], chat["text"]) for chat in history["messages"]]
    assert messages == [("alice", f"before {i}") for i in range(3)]
    assert elsewhere["messages"] == []
    async with _demo(SqliteStorage(db)) as port, connect(port, "lobby", "dave") as dave:
        _, history = await dave.join()
    assert [chat["text"] for chat in history["messages"]][-2:] == ["before 2", "after"]


async def _resumable(client: ChatClient) -> tuple[Json, Json]:
    """The ``$session`` and ``members`` of a resumable connection; history is skipped."""
    info = await client.session()
    members, _ = await client.join()
    assert members["selfId"] == info["id"]
    return info, members


async def test_a_token_brings_back_the_session_and_its_name(demo_port: int) -> None:
    """Reconnecting with the token gives the same id and the last name, and a new token."""
    async with connect(demo_port, "lobby", "ann", resume="") as ann:
        first, _ = await _resumable(ann)
        assert first["resumed"] is False
        await _rename(ann, "anna")
    # A resumed session is the stored one: the name asked for now is not used.
    async with connect(demo_port, "lobby", "someone", resume=first["token"]) as ann:
        second, members = await _resumable(ann)
        assert second == {"id": first["id"], "token": second["token"], "resumed": True}
        assert second["token"] != first["token"]
        assert members["members"] == [{"userId": first["id"], "name": "anna"}]
        await _say(ann, "I am back")
    # Tokens are single use: the first one now starts a new session.
    async with connect(demo_port, "lobby", "ann", resume=first["token"]) as other:
        third, _ = await _resumable(other)
        assert third["resumed"] is False
        assert third["id"] != first["id"]


async def test_a_session_resumes_after_a_restart(tmp_path: Path) -> None:
    """The token and the renamed name outlive the server, on the same SQLite file."""
    db = tmp_path / "demo.db"
    async with _demo(SqliteStorage(db)) as port, connect(port, "lobby", "dan", resume="") as dan:
        first, _ = await _resumable(dan)
        await _rename(dan, "daniel")
        await _say(dan, "see you")
    async with (
        _demo(SqliteStorage(db)) as port,
        connect(port, "lobby", "dan", resume=first["token"]) as dan,
    ):
        info = await dan.session()
        members, history = await dan.join()
    assert (info["id"], info["resumed"]) == (first["id"], True)
    assert members["members"] == [{"userId": first["id"], "name": "daniel"}]
    [chat] = history["messages"]
    assert (chat["userId"], chat["name"], chat["text"]) == (first["id"], "daniel", "see you")


async def test_a_rejected_name_is_told_once_not_on_every_resume(demo_port: int) -> None:
    """An invalid ?name= is rejected at creation; resuming does not repeat it."""
    async with connect(demo_port, "lobby", "   ", resume="") as guest:
        first, _ = await _resumable(guest)
        await guest.receive_type("rejected")
    async with connect(demo_port, "lobby", "   ", resume=first["token"]) as guest:
        again, _ = await _resumable(guest)
        assert again["resumed"] is True
        await _say(guest, "hello")  # the next message is this chat, not a rejection


async def test_a_session_taken_over_is_not_announced_as_gone(demo_port: int) -> None:
    """A second connection resuming a live session closes the first with 4001.

    The others never end up without the session in their member list.
    """
    async with connect(demo_port, "lobby", "bob") as bob:
        await bob.join()
        async with connect(demo_port, "lobby", "ann", resume="") as old:
            info, _ = await _resumable(old)
            async with connect(demo_port, "lobby", "ann", resume=info["token"]) as new:
                again, members = await _resumable(new)
                assert again["id"] == info["id"]
                assert await old.close_code() == 4001
                assert [m["userId"] for m in members["members"]].count(info["id"]) == 1
                await bob.send({"type": "sendChat", "text": "ann?"})
                # What bob heard, applied to his member list, leaves ann in it.
                seen: set[str] = set()
                while (message := await bob.receive())["type"] != "chat":
                    if message["type"] == "userJoined":
                        seen.add(message["userId"])
                    elif message["type"] == "userLeft":
                        seen.discard(message["userId"])
                assert seen == {info["id"]}


async def test_a_chat_that_cannot_be_stored_is_seen_by_nobody_and_the_room_restarts() -> None:
    """A chat whose write fails reaches nobody: every session gets 1011; the history lacks it."""
    storage = FlakyStorage()
    async with _demo(storage) as port:
        async with connect(port, "lobby", "alice") as alice:
            await alice.join()
            async with connect(port, "lobby", "bob") as bob:
                await bob.join()
                await alice.receive_type("userJoined")
                await _say(bob, "stored")
                assert (await alice.receive_type("chat"))["text"] == "stored"
                storage.fail = True
                await bob.send({"type": "sendChat", "text": "lost"})
                for client in (alice, bob):  # and no chat "lost" before the close
                    assert await client.close_code() == 1011
        storage.fail = False
        async with connect(port, "lobby", "carol") as carol:
            _, history = await carol.join()
        assert [chat["text"] for chat in history["messages"]] == ["stored"]
