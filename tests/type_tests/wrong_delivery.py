"""Delivery policies and tags used wrongly: not a policy, a policy's wrong arguments."""

from __future__ import annotations

import attrs

from trio_rooms import Coalesce, DropOldest, Message, Room

from .right_quickstart import Chat, ChatRoom, ChatSession


@attrs.frozen
class Position(Message):
    delivery = Coalesce("entity_id")
    entity_id: str


@attrs.frozen
class Ticker(Message):
    delivery = "drop_oldest"  # expect: reportAssignmentType
    n: int


class FeedRoom(Room[ChatSession]):
    def tick(self) -> None:
        self.broadcast(Chat(author="room", text="hi"), policy=DropOldest())
        self.broadcast(Chat(author="room", text="hi"), policy=Coalesce(key="lobby"))
        chat = Chat(author="room", text="hi")
        self.broadcast(chat, policy="drop_oldest")  # expect: reportArgumentType
        self.broadcast(chat, policy=DropOldest)  # expect: reportArgumentType
        self.broadcast(Chat(author="room", text="hi"), tags={"red"})
        self.broadcast(Chat(author="room", text="hi"), tags=[1])  # expect: reportArgumentType


def on_session(session: ChatSession, room: ChatRoom) -> None:
    session.send(Chat(author="me", text="hi"), policy=Coalesce("author"))
    session.send(Chat(author="me", text="hi"), policy=Coalesce(1))  # expect: reportArgumentType
    session.broadcast(Chat(author="me", text="hi"), exclude=[session], tags={"red"})
    session.broadcast(Chat(author="me", text="hi"), policy=None)
    session.tags.add("red")
    session.tags.add(1)  # expect: reportArgumentType
    session.tags = {"red", "blue"}
    session.tags = {1}  # expect: reportAttributeAccessIssue
    room.sessions_tagged(1)  # expect: reportArgumentType
