"""The bot of the README's client quick start (kept in sync with client_readme_section.md)."""

from __future__ import annotations

import trio

from trio_rooms import open_room_client
from trio_rooms.demo.app import (
    Chat,
    History,
    Members,
    Rejected,
    Renamed,
    SendChat,
    SetName,
    UserJoined,
    UserLeft,
)


async def run_bot(url: str = "ws://127.0.0.1:8000/rooms/lobby/websocket?name=pingbot") -> None:
    async with open_room_client(
        url,
        server=(Members, History, Chat, UserJoined, UserLeft, Renamed, Rejected),
        client=(SendChat, SetName),
    ) as bot:
        async for message in bot:
            match message:
                case Chat(user_id=user_id, name=name, text="!ping") if user_id != bot.session_id:
                    bot.send(SendChat(text=f"pong, {name}"))
                case _:
                    pass  # members, history, joins, leaves, renames, other chat


if __name__ == "__main__":
    trio.run(run_bot)
