"""Rooms for the replay tests: numbered notes, a snapshot on resync, closes on request."""

from __future__ import annotations

from typing import assert_never

import attrs
import trio

from trio_rooms import ConnectRequest, Message, ReplayLimits, Room, Session


@attrs.frozen
class Note(Message):
    n: int
    text: str = ""


@attrs.frozen
class Snapshot(Message):
    notes: int


@attrs.frozen
class Leave(Message):
    code: int
    #: Notes the session broadcasts from its on_close, once it has left the room.
    then: int = 0


ServerMsg = Note | Snapshot
ClientMsg = Leave


class NoteSession(Session[None, ServerMsg, ClientMsg, "NoteRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_resync(self) -> None:
        self.room.resyncs += 1
        self.send(Snapshot(notes=self.room.notes))

    async def on_resume(self) -> None:
        self.room.replayed.append(self.replayed)

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case Leave(code=code, then=then):
                self.room.then = then
                await self.close(code, "asked to leave")
            case _:
                assert_never(message)

    async def on_close(self, code: int, reason: str) -> None:
        for _ in range(self.room.then):
            self.room.note()
        self.room.then = 0
        self.room.closes += 1
        changed, self.room.closed = self.room.closed, trio.Event()
        changed.set()


class NoteRoom(Room[NoteSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.notes = 0
        self.then = 0
        self.resyncs = 0
        self.replayed: list[int] = []
        #: Sessions that ran on_close, and an event set (and replaced) at each.
        self.closes = 0
        self.closed = trio.Event()

    async def wait_closes(self, count: int) -> None:
        """Wait until ``count`` sessions have run on_close."""
        while self.closes < count:
            await self.closed.wait()

    def note(self, text: str = "") -> None:
        """Broadcast the next numbered note."""
        self.broadcast(Note(n=self.notes, text=text))
        self.notes += 1


class ShortLogRoom(NoteRoom):
    replay = ReplayLimits(max_messages=10)


class LongLogRoom(NoteRoom):
    replay = ReplayLimits(max_bytes=8 * 1024 * 1024)


class NoReplayRoom(NoteRoom):
    replay = False
