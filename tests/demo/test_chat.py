"""The demo chat room over real sockets, on the JSON the page sends and receives."""

from __future__ import annotations

import re

import pytest

from trio_rooms.demo.app import HISTORY_SIZE, MAX_NAME_LENGTH, MAX_TEXT_LENGTH

from .client import ChatClient, connect


async def _say(client: ChatClient, text: str) -> None:
    """Post ``text`` and wait for its broadcast to come back."""
    await client.send({"type": "sendChat", "text": text})
    chat = await client.receive_type("chat")
    assert chat["text"] == text


async def test_two_clients_see_each_other_and_another_room_sees_nothing(demo_port: int) -> None:
    """Chat, members, joins, renames and leaves reach the room, and no other room."""
    async with connect(demo_port, "other", "carol") as carol:
        await carol.join()
        async with connect(demo_port, "lobby", "alice") as alice:
            members, history = await alice.join()
            alice_id = members["selfId"]
            assert members["members"] == [{"userId": alice_id, "name": "alice"}]
            assert history["messages"] == []

            async with connect(demo_port, "lobby", "bob") as bob:
                members, _ = await bob.join()
                bob_id = members["selfId"]
                assert sorted(members["members"], key=lambda m: m["name"]) == [
                    {"userId": alice_id, "name": "alice"},
                    {"userId": bob_id, "name": "bob"},
                ]
                joined = await alice.receive()
                assert joined == {"type": "userJoined", "userId": bob_id, "name": "bob"}

                await bob.send({"type": "sendChat", "text": "  hi alice  "})
                to_bob = await bob.receive_type("chat")
                assert await alice.receive() == to_bob
                assert to_bob["userId"] == bob_id
                assert (to_bob["name"], to_bob["text"]) == ("bob", "hi alice")
                assert isinstance(to_bob["sentAt"], int)

                await alice.send({"type": "setName", "name": "Alice B."})
                renamed = {
                    "type": "renamed",
                    "userId": alice_id,
                    "oldName": "alice",
                    "name": "Alice B.",
                }
                assert await alice.receive() == renamed
                assert await bob.receive() == renamed

            left = await alice.receive()
            assert left == {"type": "userLeft", "userId": bob_id, "name": "bob"}

        # Carol's own chat is the next thing she hears: nothing of the lobby came first.
        await carol.send({"type": "sendChat", "text": "anyone?"})
        chat = await carol.receive()
        assert (chat["type"], chat["name"], chat["text"]) == ("chat", "carol", "anyone?")


async def test_a_late_joiner_gets_the_last_messages(demo_port: int) -> None:
    """A new session gets the room's last HISTORY_SIZE messages, oldest first."""
    async with connect(demo_port, "lobby", "alice") as alice:
        await alice.join()
        for i in range(HISTORY_SIZE + 2):
            await _say(alice, f"message {i}")
        async with connect(demo_port, "lobby", "bob") as bob:
            _, history = await bob.join()
    texts = [chat["text"] for chat in history["messages"]]
    assert texts == [f"message {i}" for i in range(2, HISTORY_SIZE + 2)]
    assert {chat["name"] for chat in history["messages"]} == {"alice"}
    assert "type" not in history["messages"][0]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "setName", "name": ""}, "a name must be 1 to 32 printable characters"),
        ({"type": "setName", "name": "   "}, "a name must be 1 to 32 printable characters"),
        ({"type": "setName", "name": "x" * 33}, "a name must be 1 to 32 printable characters"),
        ({"type": "setName", "name": "a\nb"}, "a name must be 1 to 32 printable characters"),
        ({"type": "sendChat", "text": ""}, "a message must be 1 to 2000 characters"),
        ({"type": "sendChat", "text": " \n "}, "a message must be 1 to 2000 characters"),
        ({"type": "sendChat", "text": "x" * 2001}, "a message must be 1 to 2000 characters"),
    ],
)
async def test_an_invalid_message_is_rejected_to_its_sender_only(
    demo_port: int, message: dict[str, str], reason: str
) -> None:
    """An invalid name or message gets the sender a rejected message and changes nothing."""
    async with connect(demo_port, "lobby", "alice") as alice:
        await alice.join()
        async with connect(demo_port, "lobby", "bob") as bob:
            await bob.join()
            await alice.receive_type("userJoined")
            await bob.send(message)
            assert await bob.receive() == {"type": "rejected", "reason": reason}
            # The connection stays usable, and alice heard nothing before this chat.
            await bob.send({"type": "sendChat", "text": "still here"})
            chat = await alice.receive_type("chat")
            assert (chat["name"], chat["text"]) == ("bob", "still here")


async def test_the_longest_valid_name_and_message_are_accepted(demo_port: int) -> None:
    """Names of MAX_NAME_LENGTH and messages of MAX_TEXT_LENGTH characters pass."""
    async with connect(demo_port, "lobby", "alice") as alice:
        await alice.join()
        name = "n" * MAX_NAME_LENGTH
        await alice.send({"type": "setName", "name": name})
        assert (await alice.receive_type("renamed"))["name"] == name
        await _say(alice, "t" * MAX_TEXT_LENGTH)


async def test_no_name_at_connect_gives_a_guest_name(demo_port: int) -> None:
    """A connection without ?name= is admitted as guest-NNNN, silently."""
    async with connect(demo_port, "lobby") as client:
        members, _ = await client.join()
        [me] = members["members"]
        assert re.fullmatch(r"guest-[0-9]{4}", me["name"])
        await _say(client, "hello")  # the next message is this chat, not a rejection


@pytest.mark.parametrize("name", ["", "   ", "x" * 33])
async def test_an_invalid_name_at_connect_becomes_a_guest_name(demo_port: int, name: str) -> None:
    """An invalid ?name= is replaced by a guest name, and the client is told why."""
    async with connect(demo_port, "lobby", name) as client:
        members, _ = await client.join()
        [me] = members["members"]
        assert re.fullmatch(r"guest-[0-9]{4}", me["name"])
        rejected = await client.receive_type("rejected")
        assert rejected["reason"] == (
            f"a name must be 1 to 32 printable characters; you are {me['name']}"
        )


async def test_an_unknown_message_gets_the_library_error_frame(demo_port: int) -> None:
    """A message the room does not know is answered with an error frame; the session stays."""
    async with connect(demo_port, "lobby", "alice") as alice:
        await alice.join()
        await alice.send({"type": "shout", "text": "hi"})
        error = await alice.receive()
        assert set(error) == {"error"}
        await _say(alice, "still here")
