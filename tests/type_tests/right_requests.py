"""A request's handler returns its declared reply; ``client.request`` returns it, typed."""

from __future__ import annotations

from typing import assert_type

import attrs

from trio_rooms import ConnectRequest, Message, Request, Session, open_room_client, replies


@attrs.frozen
class Score(Message):
    points: int


@attrs.frozen
class NotFound(Message):
    player: str


@attrs.frozen
class GetScore(Request[Score]):
    player: str


@attrs.frozen
class FindScore(Request[Score | NotFound]):
    player: str


class GameSession(Session[None, Score | NotFound, GetScore | FindScore]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    @replies(GetScore)
    async def get_score(self, request: GetScore) -> Score:
        return Score(len(request.player))

    @replies(FindScore)
    async def find_score(self, request: FindScore) -> Score | NotFound:
        return NotFound(request.player) if not request.player else Score(1)

    async def on_message(self, message: GetScore | FindScore) -> None:
        pass


async def main(url: str) -> None:
    async with open_room_client(url, GameSession) as client:
        assert_type(await client.request(GetScore("ann"), timeout=5), Score)
        assert_type(await client.request(FindScore("ann")), Score | NotFound)
