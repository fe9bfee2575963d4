"""A `match` over the client union that forgets a case cannot end in `assert_never`."""

from __future__ import annotations

from typing import assert_never

from trio_rooms import ConnectRequest, Session

from .right_quickstart import Chat, ChatClientMsg, ChatData, ChatServerMsg, SendChat


class ForgetfulSession(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(user_id=self.id, name="anon", joined_at=0)

    async def on_message(self, message: ChatClientMsg) -> None:
        match message:
            case SendChat(text=text):
                self.broadcast(Chat(author=self.data.name, text=text))
            case _:
                assert_never(message)  # expect: reportArgumentType


def describe(message: ChatServerMsg) -> str:
    match message:
        case Chat(text=text):
            return text
        case _:
            assert_never(message)  # expect: reportArgumentType
