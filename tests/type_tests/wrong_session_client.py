"""A client typed by a session class takes only its messages; wire names stay field metadata."""

from __future__ import annotations

import attrs

import trio_rooms
from trio_rooms import Message, open_room_client

from .right_quickstart import Chat, ChatRoom, ChatSession, SendChat


@attrs.frozen
class Said(Message):
    message: str
    from_: str = attrs.field(metadata=trio_rooms.wire("from"))


@attrs.frozen
class Misused(Message):
    # A wire name is metadata, not a default:
    from_: str = trio_rooms.wire("from")  # expect: reportAssignmentType


async def main(url: str) -> None:
    async with open_room_client(url, ChatSession) as client:
        client.send(Chat(author="u", text="hi"))  # expect: reportArgumentType
        message = await client.receive()
        wrong: SendChat = message  # expect: reportAssignmentType
        print(wrong)
    # A room class is not a session class:
    async with open_room_client(url, ChatRoom):  # expect: reportArgumentType
        pass
    # A session class takes no tuples beside it:
    async with open_room_client(url, ChatSession, (SendChat,)):  # expect: reportArgumentType
        pass
    # The field with a wire name is still required, under its Python name:
    Said(message="hi")  # expect: reportCallIssue
    attrs.field(metadata=trio_rooms.wire(1))  # expect: reportArgumentType
