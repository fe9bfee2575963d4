"""The quick start a user writes: pyright strict must accept it with no Unknown types.

``test_type_tests.py`` runs pyright on this file and expects zero diagnostics; the
project's own pyright run checks it too. `typing.assert_type` pins the inferred types
a user relies on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar, assert_never, assert_type

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Reject, Room, Rooms, Session, testing

# --------------------------------------------------------------------------- messages


@attrs.frozen
class SendChat(Message):
    """Client: say something to the room."""

    text: str


@attrs.frozen
class SetName(Message):
    """Client: change the display name."""

    name: str


@attrs.frozen
class Chat(Message):
    """Server: someone said something."""

    tag = "message"
    author: str
    text: str


@attrs.frozen
class UserJoined(Message):
    """Server: a session joined the room."""

    user_id: str
    name: str


@attrs.frozen
class UserLeft(Message):
    """Server: a session left the room."""

    user_id: str


@attrs.frozen
class NameChanged(Message):
    """Server: a session changed its name."""

    user_id: str
    name: str


ChatClientMsg = SendChat | SetName
ChatServerMsg = Chat | UserJoined | UserLeft | NameChanged


# --------------------------------------------------------------------------- session


@attrs.define
class ChatData:
    """What each session keeps across reconnects."""

    user_id: str
    name: str
    joined_at: int


class ChatSession(Session[ChatData, ChatServerMsg, ChatClientMsg, "ChatRoom"]):
    """One chat participant, in a `ChatRoom` (the fourth type argument types ``self.room``)."""

    @classmethod
    async def authorize(cls, request: ConnectRequest) -> None:
        if request.query.get("name") == "admin":
            raise Reject(403, "that name is reserved")

    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(
            user_id=self.id,
            name=request.query.get("name", "anon"),
            joined_at=int(time.time()),
        )

    async def on_connect(self) -> None:
        self.broadcast(
            UserJoined(user_id=self.data.user_id, name=self.data.name), exclude_self=True
        )

    async def on_message(self, message: ChatClientMsg) -> None:
        match message:
            case SendChat(text=text):
                self.broadcast(Chat(author=self.data.name, text=text))
            case SetName(name=name):
                self.data.name = name
                self.send(NameChanged(user_id=self.data.user_id, name=name))
                self.room.broadcast(
                    NameChanged(user_id=self.data.user_id, name=name), exclude=(self,)
                )
            case _:
                assert_never(message)

    async def on_close(self, code: int, reason: str) -> None:
        self.broadcast(UserLeft(user_id=self.data.user_id), exclude_self=True)

    def pinned_types(self) -> None:
        """The types a session sees of itself and its room."""
        assert_type(self.data, ChatData)
        assert_type(self.room, ChatRoom)
        assert_type(self.room.name, str)
        assert_type(self.room.history, list[Chat])
        self.room.announce("no cast needed")
        assert_type(self.room.sessions, Mapping[str, ChatSession])
        for other in self.room.sessions.values():
            assert_type(other.data, ChatData)
            other.send(Chat(author=self.data.name, text="hello"))


class ChatRoom(Room[ChatSession]):
    """A chat room: remembers what was said."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.history: list[Chat] = []

    async def on_start(self) -> None:
        self.history.clear()

    def announce(self, text: str) -> None:
        """Send a server message to everyone, as the room."""
        chat = Chat(author="room", text=text)
        self.history.append(chat)
        self.broadcast(chat)
        self.broadcast(UserLeft(user_id="ghost"), exclude=["some-session-id"])
        for session in self.sessions.values():
            assert_type(session, ChatSession)
            assert_type(session.room, ChatRoom)
            session.send(chat)


# ------------------------------------------------- a generic intermediate session class

DataT = TypeVar("DataT")
ServerMsgT = TypeVar("ServerMsgT", bound=Message)


class NamedSession(Session[DataT, ServerMsgT, ChatClientMsg], Generic[DataT, ServerMsgT]):
    """A reusable base: handles the chat client messages, leaves data and replies open."""

    async def on_message(self, message: ChatClientMsg) -> None:
        match message:
            case SendChat(text=text):
                self.on_chat(text)
            case SetName(name=name):
                self.on_rename(name)
            case _:
                assert_never(message)

    def on_chat(self, text: str) -> None:
        """Handle a chat line."""

    def on_rename(self, name: str) -> None:
        """Handle a rename."""


@attrs.frozen
class Echo(Message):
    """Server: the text, sent back."""

    text: str


@attrs.define
class EchoData:
    """An echo session's data."""

    count: int = 0


class EchoSession(NamedSession[EchoData, Echo]):
    """Echoes chat lines back to the sender."""

    async def create_data(self, request: ConnectRequest) -> EchoData:
        return EchoData()

    def on_chat(self, text: str) -> None:
        self.data.count += 1
        self.send(Echo(text=text))
        self.broadcast(Echo(text=text), exclude_self=True)
        self.room.broadcast(Echo(text=text))
        # Without a fourth type argument, the room is one of sessions like this one.
        room: trio_rooms.SessionRoom[Session[EchoData, Echo, ChatClientMsg], Echo] = self.room
        room.broadcast(Echo(text=text))
        for other in self.room.sessions.values():
            assert_type(other.data, EchoData)
            other.send(Echo(text=text))


class EchoRoom(Room[EchoSession]):
    """A room of echo sessions."""


# --------------------------------------------------------------------------- main


def make_chat_room(name: str) -> ChatRoom:
    """A factory, for rooms that need dependencies."""
    return ChatRoom(name)


async def main() -> None:
    """Serve the chat rooms and talk to them through the testing client."""
    async with trio_rooms.open_rooms(ChatRoom) as rooms, trio.open_nursery() as nursery:
        assert_type(rooms, Rooms[ChatRoom])
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        assert port > 0

        lobby = await rooms.get("lobby")
        assert_type(lobby, ChatRoom)
        assert_type(lobby.history, list[Chat])
        assert_type(lobby.sessions, Mapping[str, ChatSession])
        assert_type(await lobby.members(), Sequence[str])

        async with testing.connect(rooms, "lobby", query="name=alice") as alice:
            assert_type(alice, testing.TestClient[ChatServerMsg, ChatClientMsg])
            alice.send(SendChat(text="hi"))
            reply = await alice.receive()
            assert_type(reply, ChatServerMsg)
            match reply:
                case Chat(author=author, text=text):
                    assert_type(author, str)
                    assert_type(text, str)
                case UserJoined() | UserLeft() | NameChanged():
                    pass
                case _:
                    assert_never(reply)

        nursery.cancel_scope.cancel()

    config = trio_rooms.RoomsConfig()
    async with trio_rooms.open_rooms(make_chat_room, config=config) as rooms:
        assert_type(rooms, Rooms[ChatRoom])
        assert_type(await rooms.get("lobby"), ChatRoom)

    async with trio_rooms.open_rooms(EchoRoom) as echo_rooms:
        echo_room = await echo_rooms.get("echo")
        assert_type(echo_room, EchoRoom)
        for session in echo_room.sessions.values():
            assert_type(session, EchoSession)
            assert_type(session.data, EchoData)
        async with testing.connect(echo_rooms, "echo") as client:
            assert_type(client, testing.TestClient[Echo, ChatClientMsg])
            client.send(SetName(name="bob"))
            client.send(SendChat(text="ping"))
            assert_type(await client.receive(), Echo)


async def count_rooms(names: Sequence[str], config: trio_rooms.RoomsConfig) -> int:
    async with trio_rooms.open_signal_scope() as scope:
        assert_type(scope, trio.CancelScope)
        async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
            for name in names:
                await rooms.get(name)
            return rooms.statistics().rooms
    return 0


def run_them() -> None:
    assert_type(trio_rooms.run(count_rooms, ["a"], trio_rooms.RoomsConfig()), int | None)


if __name__ == "__main__":
    trio_rooms.run(main)
