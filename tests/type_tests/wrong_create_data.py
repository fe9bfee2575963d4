"""`create_data` declared or implemented with a type other than the session's data."""

from __future__ import annotations

from trio_rooms import ConnectRequest, Session

from .right_quickstart import ChatClientMsg, ChatData, ChatServerMsg, EchoData


class DeclaredWrong(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    # expect: reportIncompatibleMethodOverride
    async def create_data(self, request: ConnectRequest) -> EchoData:
        return EchoData()

    async def on_message(self, message: ChatClientMsg) -> None:
        pass


class ReturnsWrong(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        return EchoData()  # expect: reportReturnType

    async def on_message(self, message: ChatClientMsg) -> None:
        self.data = EchoData()  # expect: reportAttributeAccessIssue

    async def on_connect(self) -> None:
        data: EchoData = self.data  # expect: reportAssignmentType
        print(data)
