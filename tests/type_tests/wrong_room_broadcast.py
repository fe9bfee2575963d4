"""A room broadcasts a client message, from inside and from outside the room."""

from __future__ import annotations

from trio_rooms import Room, Rooms

from .right_quickstart import Chat, ChatRoom, ChatSession, Echo, EchoRoom, SendChat, SetName


class LoudRoom(Room[ChatSession]):
    def shout(self) -> None:
        self.broadcast(Chat(author="room", text="hi"))
        self.broadcast(SendChat(text="hi"))  # expect: reportArgumentType
        self.broadcast(Echo(text="hi"), exclude=())  # expect: reportArgumentType


async def from_outside(rooms: Rooms[ChatRoom], echo_rooms: Rooms[EchoRoom]) -> None:
    lobby = await rooms.get("lobby")
    lobby.broadcast(SetName(name="bob"))  # expect: reportArgumentType
    lobby.broadcast(Echo(text="hi"))  # expect: reportArgumentType
    echo = await echo_rooms.get("echo")
    echo.broadcast(Chat(author="room", text="hi"))  # expect: reportArgumentType
    echo.broadcast(Echo(text="hi"), exclude=[1])  # expect: reportArgumentType
