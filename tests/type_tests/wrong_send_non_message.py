"""Things that are not messages: sent, broadcast, or given as a session's unions."""

from __future__ import annotations

import attrs

from trio_rooms import ConnectRequest, Room, Session

from .right_quickstart import ChatClientMsg, ChatData, ChatServerMsg


@attrs.frozen
class NotAMessage:
    text: str


class Sloppy(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(user_id=self.id, name="anon", joined_at=0)

    async def on_message(self, message: ChatClientMsg) -> None:
        self.send("hello")  # expect: reportArgumentType
        self.send({"type": "chat", "text": "hello"})  # expect: reportArgumentType
        self.broadcast(NotAMessage(text="hello"))  # expect: reportArgumentType
        self.room.broadcast(None)  # expect: reportArgumentType


# expect: reportInvalidTypeArguments, reportInvalidTypeArguments
class BadUnions(Session[ChatData, NotAMessage, str]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(user_id=self.id, name="anon", joined_at=0)

    async def on_message(self, message: str) -> None:
        pass


class NotASessionRoom(Room[ChatData]):  # expect: reportInvalidTypeArguments
    pass
