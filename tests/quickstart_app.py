"""The README quick start, as a user runs it with ``trio_rooms.run``.

Run as ``python -m tests.quickstart_app [--slow-stop]``: serves on 127.0.0.1 on a free
port and prints ``PORT <n>`` once listening. With ``--slow-stop`` every room's
``on_stop`` prints ``STOPPING`` and then never returns (within a 60 s shutdown timeout).
"""

from __future__ import annotations

import sys
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, RoomsConfig, Session


@attrs.frozen
class SendChat(Message):
    text: str


@attrs.frozen
class Chat(Message):
    user_id: str
    text: str


@attrs.define
class ChatData:
    name: str


class ChatSession(Session[ChatData, Chat, SendChat]):
    async def create_data(self, request: ConnectRequest) -> ChatData:
        return ChatData(name=request.query.get("name", "anon"))

    async def on_message(self, message: SendChat) -> None:
        match message:
            case SendChat(text=text):
                self.broadcast(Chat(user_id=self.id, text=text))
            case _:
                assert_never(message)


class ChatRoom(Room[ChatSession]):
    pass


class SlowStopRoom(ChatRoom):
    async def on_stop(self) -> None:
        print("STOPPING", flush=True)
        await trio.sleep_forever()


async def main(slow_stop: bool) -> None:
    factory = SlowStopRoom if slow_stop else ChatRoom
    config = RoomsConfig(shutdown_timeout=60.0)
    async with (
        trio_rooms.open_rooms(factory, config=config) as rooms,
        trio.open_nursery() as nursery,
    ):
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        print(f"PORT {port}", flush=True)


if __name__ == "__main__":
    trio_rooms.run(main, "--slow-stop" in sys.argv[1:])
