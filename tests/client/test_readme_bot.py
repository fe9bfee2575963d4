"""The README's bot answers a command in the demo's chat room."""

from __future__ import annotations

import trio

import trio_rooms
from trio_rooms import open_room_client
from trio_rooms.demo.app import Chat, ChatRoom, SendChat, SetName

from .readme_bot import run_bot


async def test_the_bot_answers_ping(nursery: trio.Nursery) -> None:
    """Someone says !ping in the lobby; the bot answers pong with their name."""
    async with trio_rooms.open_rooms(ChatRoom) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}/rooms/lobby/websocket"
        async with trio.open_nursery() as bots:
            bots.start_soon(run_bot, f"{url}?name=pingbot")
            async with open_room_client(f"{url}?name=ann", (Chat,), (SendChat, SetName)) as ann:
                ann.send(SendChat(text="!ping"))
                # Ann's client only knows Chat; the other demo messages are logged and skipped.
                with trio.fail_after(10):
                    while True:
                        message = await ann.receive()
                        if message.text.startswith("pong"):
                            break
                assert message.text == "pong, ann"
            bots.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
