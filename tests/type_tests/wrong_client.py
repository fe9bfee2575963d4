"""A room client sends only client messages and receives only server messages."""

from __future__ import annotations

from trio_rooms import open_room_client

from .right_quickstart import Chat, SendChat, SetName, UserJoined


async def main(url: str) -> None:
    async with open_room_client(url, (Chat, UserJoined), (SendChat, SetName)) as client:
        client.send(SendChat(text="hi"))
        client.send(Chat(author="bot", text="hi"))  # expect: reportArgumentType
        client.send(UserJoined(user_id="u", name="n"))  # expect: reportArgumentType
        client.send("hi")  # expect: reportArgumentType
        message = await client.receive()
        text: SendChat = message  # expect: reportAssignmentType
        print(text)
        async for received in client:
            wrong: SetName = received  # expect: reportAssignmentType
            print(wrong)
    # A bare class where a tuple of classes is expected:
    async with open_room_client(url, Chat, (SendChat,)):  # expect: reportArgumentType
        pass
