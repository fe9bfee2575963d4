"""A room whose sessions answer requests: scores, slow and failing handlers, a drop."""

from __future__ import annotations

from collections import Counter
from typing import assert_never

import attrs
import trio

from trio_rooms import ConnectRequest, Message, Request, RequestError, Room, Session, replies


@attrs.frozen
class Score(Message):
    player: str
    points: int


@attrs.frozen
class Chat(Message):
    text: str


@attrs.frozen
class GetScore(Request[Score]):
    player: str


@attrs.frozen
class Slow(Request[Score]):
    """Answered once a `Release` of the same key arrives; the gate is let go meanwhile."""

    key: str


@attrs.frozen
class Fail(Request[Score]):
    """Refused with `RequestError` if ``refuse``, else its handler fails with a bug."""

    refuse: bool


@attrs.frozen
class Unanswered(Request[Score]):
    """A request no handler of the session answers."""


@attrs.frozen
class Release(Message):
    key: str


@attrs.frozen
class Say(Message):
    """Answered with a `Chat` of ``text``; with ``code``, the session then closes."""

    text: str
    code: int | None = None


ServerMsg = Score | Chat
ClientMsg = GetScore | Slow | Fail | Unanswered | Release | Say


class RpcSession(Session[None, ServerMsg, ClientMsg, "RpcRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    @replies(GetScore)
    async def get_score(self, request: GetScore) -> Score:
        self.room.calls[request.player] += 1
        return Score(request.player, self.room.scores.get(request.player, 0))

    @replies(Slow)
    async def slow(self, request: Slow) -> Score:
        self.room.calls[request.key] += 1
        self.room.waiting[request.key] = released = trio.Event()
        self.room.changed()
        async with self.room.unlocked():
            await released.wait()
        return Score(request.key, 1)

    @replies(Fail)
    async def fail(self, request: Fail) -> Score:
        if request.refuse:
            raise RequestError("refused on purpose")
        raise ZeroDivisionError("a bug in the handler")

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case Release(key=key):
                self.room.waiting.pop(key).set()
            case Say(text=text, code=code):
                self.send(Chat(text))
                if code is not None:
                    # Not awaited here: the Chat leaves only once this handler returns.
                    self.room.start_soon(self.close, code, "asked to")
            case GetScore() | Slow() | Fail() | Unanswered():
                pass  # requests go to their handlers
            case _:
                assert_never(message)

    async def on_error(self, error: Exception) -> None:
        self.room.errors.append(error)


class RpcRoom(Room[RpcSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.scores = {"ann": 3, "bob": 5}
        #: Handler calls by player or key.
        self.calls: Counter[str] = Counter()
        #: Slow requests waiting for their Release, by key.
        self.waiting: dict[str, trio.Event] = {}
        self.errors: list[Exception] = []
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_waiting(self, key: str) -> None:
        """Wait until a Slow request of ``key`` waits for its release."""
        while key not in self.waiting:
            await self._changed.wait()
