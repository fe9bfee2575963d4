"""A room with requests: the golden files' second room (``golden/requests``).

One request with a single reply, one with a union of replies that holds bytes (so the
msgpack contract maps it to the twins), and one whose tag is not an identifier.
"""

from __future__ import annotations

from typing import assert_never

import attrs

from trio_rooms import ConnectRequest, Message, Request, RequestError, Room, Session, replies


@attrs.frozen
class Score(Message):
    player: str
    points: int


@attrs.frozen
class Blob(Message):
    name: str
    data: bytes


@attrs.frozen
class Missing(Message):
    name: str


@attrs.frozen
class Said(Message):
    text: str


@attrs.frozen
class GetScore(Request[Score]):
    player: str


@attrs.frozen
class Fetch(Request[Blob | Missing]):
    name: str


@attrs.frozen
class Ping(Request[Said]):
    tag = "ping!"


@attrs.frozen
class Say(Message):
    """A plain message: no reply."""

    text: str


ClientMsg = Say | GetScore | Fetch | Ping
ServerMsg = Said | Score | Blob | Missing


class RequestsSession(Session[None, ServerMsg, ClientMsg]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case Say(text=text):
                self.broadcast(Said(text=text))
            case GetScore() | Fetch() | Ping():
                pass  # answered by the handlers below
            case _:
                assert_never(message)

    @replies(GetScore)
    async def get_score(self, request: GetScore) -> Score:
        return Score(player=request.player, points=len(request.player))

    @replies(Fetch)
    async def fetch(self, request: Fetch) -> Blob | Missing:
        if not request.name:
            raise RequestError("a name is required")
        return Missing(name=request.name)

    @replies(Ping)
    async def ping(self, request: Ping) -> Said:
        return Said(text="pong")


class RequestsRoom(Room[RequestsSession]):
    pass
