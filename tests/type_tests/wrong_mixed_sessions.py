"""Rooms and clients of one session class used where another's are expected."""

from __future__ import annotations

from trio_rooms import Room, Rooms, testing

from .right_quickstart import (
    Chat,
    ChatClientMsg,
    ChatRoom,
    ChatServerMsg,
    ChatSession,
    Echo,
    EchoRoom,
    EchoSession,
    SendChat,
)


def needs_chat_rooms(rooms: Rooms[ChatRoom]) -> None: ...


def needs_chat_room(room: Room[ChatSession]) -> None: ...


def needs_chat_client(client: testing.TestClient[ChatServerMsg, ChatClientMsg]) -> None: ...


async def mixed(chat_rooms: Rooms[ChatRoom], echo_rooms: Rooms[EchoRoom]) -> None:
    needs_chat_rooms(chat_rooms)
    needs_chat_rooms(echo_rooms)  # expect: reportArgumentType
    echo = await echo_rooms.get("echo")
    needs_chat_room(echo)  # expect: reportArgumentType
    wrong_room: ChatRoom = echo  # expect: reportAssignmentType
    session: ChatSession = next(iter(echo.sessions.values()))  # expect: reportAssignmentType

    async with testing.connect(echo_rooms, "echo") as echo_client:
        echo_client.send(SendChat(text="ping"))
        echo_client.send(Echo(text="ping"))  # expect: reportArgumentType
        needs_chat_client(echo_client)  # expect: reportArgumentType
        chat: Chat = await echo_client.receive()  # expect: reportAssignmentType
        print(wrong_room, session, chat)

    async with testing.connect(chat_rooms, "lobby") as chat_client:
        chat_client.send(Chat(author="me", text="hi"))  # expect: reportArgumentType
        echoed: Echo = await chat_client.receive()  # expect: reportAssignmentType
        print(echoed, EchoSession)
