"""A session sends messages of its client union: both `send` and `broadcast` reject them."""

from __future__ import annotations

from trio_rooms import ConnectRequest, Session

from .right_quickstart import Chat, ChatClientMsg, ChatData, ChatServerMsg, SendChat, SetName


class EchoBackSession(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(user_id=self.id, name="anon", joined_at=0)

    async def on_message(self, message: ChatClientMsg) -> None:
        self.send(Chat(author="server", text="ok"))
        self.send(message)  # expect: reportArgumentType
        self.send(SendChat(text="echo"))  # expect: reportArgumentType
        self.broadcast(SetName(name="bob"))  # expect: reportArgumentType
        self.broadcast(message, exclude_self=True)  # expect: reportArgumentType
        self.room.broadcast(SendChat(text="echo"))  # expect: reportArgumentType
        for other in self.room.sessions.values():
            other.send(SetName(name="bob"))  # expect: reportArgumentType
