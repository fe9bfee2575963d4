"""Hooks overridden with parameters narrower than the session's unions."""

from __future__ import annotations

from trio_rooms import ConnectRequest, Session

from .right_quickstart import ChatClientMsg, ChatData, ChatServerMsg, SendChat


class NarrowSession(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(user_id=self.id, name="anon", joined_at=0)

    # expect: reportIncompatibleMethodOverride
    async def on_message(self, message: SendChat) -> None:
        pass


class SyncSession(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(user_id=self.id, name="anon", joined_at=0)

    # expect: reportIncompatibleMethodOverride
    def on_message(self, message: ChatClientMsg) -> None:
        pass

    # expect: reportIncompatibleMethodOverride
    async def on_close(self, code: str, reason: str) -> None:
        pass
