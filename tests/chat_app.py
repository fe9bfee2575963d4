"""The chat application the behavioural tests run against."""

from __future__ import annotations

from typing import assert_never

import attrs
import trio

from trio_rooms import ConnectRequest, Message, Room, Session


@attrs.frozen
class SendChat(Message):
    tag = "message"
    text: str


@attrs.frozen
class SetName(Message):
    name: str


@attrs.frozen
class Whisper(Message):
    """Reply to the sender only."""

    text: str


@attrs.frozen
class Shout(Message):
    """Broadcast to everyone but the sender."""

    text: str


@attrs.frozen
class Boom(Message):
    """Make the handler raise."""


@attrs.frozen
class Slow(Message):
    """Handle after waiting for the room's gate to open, then echo ``seq``."""

    seq: int


@attrs.frozen
class Leave(Message):
    """Ask the server to close this session with ``code``."""

    code: int


ClientMsg = SendChat | SetName | Whisper | Shout | Boom | Slow | Leave


@attrs.frozen
class Chat(Message):
    user_id: str
    name: str
    text: str


@attrs.frozen
class UserJoined(Message):
    user_id: str
    name: str


@attrs.frozen
class UserLeft(Message):
    user_id: str
    code: int


@attrs.frozen
class Renamed(Message):
    user_id: str
    name: str


@attrs.frozen
class Echo(Message):
    seq: int


ServerMsg = Chat | UserJoined | UserLeft | Renamed | Echo


@attrs.define
class ChatData:
    name: str
    messages: int = 0


class ChatSession(Session[ChatData, ServerMsg, ClientMsg, "ChatRoom"]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        name = request.query.get("name", "anon")
        if name == "fail":
            raise RuntimeError("create_data refused this name")
        return ChatData(name=name)

    async def on_connect(self) -> None:
        self.broadcast(UserJoined(user_id=self.id, name=self.data.name))

    async def on_message(self, message: ClientMsg) -> None:
        self.data.messages += 1
        match message:
            case SendChat(text=text):
                self.broadcast(Chat(user_id=self.id, name=self.data.name, text=text))
            case SetName(name=name):
                self.data.name = name
                await self.update()  # durable before anyone hears of it
                self.broadcast(Renamed(user_id=self.id, name=name))
            case Whisper(text=text):
                self.send(Chat(user_id=self.id, name=self.data.name, text=text))
            case Shout(text=text):
                self.broadcast(
                    Chat(user_id=self.id, name=self.data.name, text=text), exclude_self=True
                )
            case Boom():
                raise ValueError("boom")
            case Slow(seq=seq):
                async with self.room.unlocked():  # a wait outside the room
                    await self.room.slow_release.wait()
                self.send(Echo(seq=seq))
            case Leave(code=code):
                await self.close(code, "asked to leave")
            case _:
                assert_never(message)

    async def on_close(self, code: int, reason: str) -> None:
        self.room.record_close(self.data.name, code)
        self.broadcast(UserLeft(user_id=self.id, code=code))

    async def on_error(self, error: Exception) -> None:
        self.room.errors.append(error)
        await super().on_error(error)


class ChatRoom(Room[ChatSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.slow_release = trio.Event()
        self.closed: list[tuple[str, int]] = []
        self._closed_changed = trio.Event()
        self.errors: list[Exception] = []
        self.started = False
        self.stopped = trio.Event()

    def record_close(self, name: str, code: int) -> None:
        self.closed.append((name, code))
        self._closed_changed.set()
        self._closed_changed = trio.Event()

    async def wait_closed(self, count: int) -> list[tuple[str, int]]:
        """Wait until ``count`` sessions have run on_close."""
        while len(self.closed) < count:
            await self._closed_changed.wait()
        return self.closed

    async def on_start(self) -> None:
        await trio.lowlevel.checkpoint()
        self.started = True

    async def on_stop(self) -> None:
        self.stopped.set()
