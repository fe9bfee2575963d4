"""Alarms take a datetime or a UNIX time, and a room's on_alarm keeps its signature."""

from __future__ import annotations

import datetime

from trio_rooms import Rooms

from .right_quickstart import ChatRoom, ChatSession


class TimerRoom(ChatRoom):
    async def on_alarm(self, name: str) -> None:  # expect: reportIncompatibleMethodOverride
        await self.set_alarm(name, delay=1.0)


async def set_some(rooms: Rooms[ChatRoom], session: ChatSession) -> None:
    lobby = await rooms.get("lobby")
    await lobby.set_alarm("ok", at=datetime.datetime.now(datetime.UTC))
    await lobby.set_alarm("ok", at=1_700_000_000.0)
    await lobby.set_alarm("bad", at="tomorrow")  # expect: reportArgumentType
    await lobby.set_alarm("bad", delay=datetime.timedelta(seconds=1))  # expect: reportArgumentType
    await lobby.set_alarm(7, delay=1.0)  # expect: reportArgumentType
    when: float = lobby.alarms()["ok"]  # expect: reportAssignmentType
    await session.room.set_alarm("from-a-session", delay=1.0)
    await session.room.cancel_alarm(b"bytes")  # expect: reportArgumentType
    print(when)
