"""`authorize`, `Reject`, the backplane and `members` used with the wrong types."""

from __future__ import annotations

import trio_rooms
from trio_rooms import ConnectRequest, Reject, Session

from .right_quickstart import ChatClientMsg, ChatData, ChatRoom, ChatServerMsg


class InstanceAuthorize(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    # expect: reportIncompatibleMethodOverride
    async def authorize(self, request: ConnectRequest) -> None:
        pass

    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(user_id=self.id, name="x", joined_at=0)

    async def on_message(self, message: ChatClientMsg) -> None:
        pass


class SyncAuthorize(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    @classmethod
    def authorize(cls, request: ConnectRequest) -> None:  # expect: reportIncompatibleMethodOverride
        raise Reject("401")  # expect: reportArgumentType

    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(user_id=self.id, name="x", joined_at=0)

    async def on_message(self, message: ChatClientMsg) -> None:
        pass


async def members(room: ChatRoom) -> None:
    ids: list[int] = await room.members()  # expect: reportAssignmentType
    print(ids)
    url = "redis://localhost"
    async with trio_rooms.open_rooms(ChatRoom, backplane=url):  # expect: reportArgumentType
        pass
