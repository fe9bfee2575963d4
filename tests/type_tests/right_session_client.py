"""A client typed by the server's session class; fields with their own wire names."""

from __future__ import annotations

from typing import assert_type

import attrs

import trio_rooms
from trio_rooms import Message, RoomClient, open_room_client

from .right_quickstart import (
    Chat,
    ChatSession,
    Echo,
    EchoSession,
    NameChanged,
    SendChat,
    SetName,
    UserJoined,
    UserLeft,
)


@attrs.frozen
class Said(Message):
    """The seed's ``{ type: 'said'; message: string; from: string }``."""

    message: str
    from_: str = attrs.field(metadata=trio_rooms.wire("from"))
    to: str | None = attrs.field(default=None, metadata={**trio_rooms.wire("@to"), "x": 1})


async def main(url: str) -> None:
    async with open_room_client(url, ChatSession) as client:
        assert_type(
            client, RoomClient[Chat | UserJoined | UserLeft | NameChanged, SendChat | SetName]
        )
        client.send(SetName(name="bot"))
        async for message in client:
            assert_type(message, Chat | UserJoined | UserLeft | NameChanged)
    # Through a generic intermediate session class too.
    async with open_room_client(url, EchoSession, format="msgpack", resume=False) as echo:
        assert_type(echo, RoomClient[Echo, SendChat | SetName])
    # The tuple form, for a client without the server's code.
    async with open_room_client(url, server=(Chat, Said), client=(SendChat,)) as plain:
        assert_type(plain, RoomClient[Chat | Said, SendChat])
    said = Said(message="hi", from_="ann")
    assert_type(said.from_, str)
