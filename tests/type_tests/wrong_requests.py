"""A handler must take its request and return its declared reply; only requests are requested."""

from __future__ import annotations

import attrs

from trio_rooms import ConnectRequest, Message, Request, Session, open_room_client, replies

from .right_requests import GameSession, GetScore, NotFound, Score


@attrs.frozen
class Chat(Message):
    text: str


@attrs.frozen
class GetName(Request[Chat]):
    pass


class WrongSession(Session[None, Score | Chat, GetScore | GetName | Chat]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    @replies(GetScore)  # expect: reportArgumentType
    async def returns_another_reply(self, request: GetScore) -> NotFound:
        return NotFound("x")

    @replies(GetScore)  # expect: reportArgumentType
    async def takes_another_request(self, request: GetName) -> Score:
        return Score(1)

    @replies(GetName)  # expect: reportArgumentType
    async def returns_a_union(self, request: GetName) -> Chat | Score:
        return Chat("x")

    async def on_message(self, message: GetScore | GetName | Chat) -> None:
        pass


async def main(url: str) -> None:
    async with open_room_client(url, GameSession) as client:
        await client.request(Score(1))  # expect: reportArgumentType
        name: NotFound = await client.request(GetScore("ann"))  # expect: reportAssignmentType
        print(name)
    replies(Score)  # expect: reportArgumentType
