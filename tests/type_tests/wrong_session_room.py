"""A session's room is typed by its fourth type argument: only that room's attributes exist."""

from __future__ import annotations

from trio_rooms import ConnectRequest, Room, Session

from .right_quickstart import ChatClientMsg, ChatData, ChatRoom, ChatServerMsg, ChatSession, Echo


def wrong_attributes(session: ChatSession) -> None:
    session.room.history.append(Echo(text="hi"))  # expect: reportArgumentType
    # expect: reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownArgumentType
    print(session.room.topic)
    session.room.announce(1)  # expect: reportArgumentType


class PlainSession(Session[ChatData, ChatServerMsg, ChatClientMsg]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        raise NotImplementedError

    async def on_message(self, message: ChatClientMsg) -> None:
        # expect: reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownArgumentType
        print(self.room.history)
        self.room.broadcast(message)  # expect: reportArgumentType


class NotARoom:
    pass


# expect: reportInvalidTypeArguments
class BadRoomArgument(Session[ChatData, ChatServerMsg, ChatClientMsg, NotARoom]):
    pass


def the_room_of_a_chat_room(room: ChatRoom) -> Room[ChatSession]:
    return room
