"""A client closed before any session serves it is closed within ``close_timeout``.

A client that does not read keeps a close frame's write waiting for as long as it likes
(its socket's window stays shut): without a bound, the task serving it would be held
for ever, one per such client.
"""

from __future__ import annotations

import trio

import trio_rooms
from trio_rooms import ConnectRequest, RoomsConfig
from trio_rooms._core.outbound import Frame, OutboundQueue
from trio_rooms._core.rooms import registry_of

from .chat_app import ChatRoom


class _Unread:
    """A client's connection that takes nothing: its close frame is never written."""

    def __init__(self) -> None:
        self.closes: list[tuple[int, str]] = []

    def attach(self, outbound: OutboundQueue) -> None:
        pass

    async def receive(self) -> str | bytes:
        await trio.sleep_forever()

    async def send(self, frames: list[Frame]) -> None:
        await trio.sleep_forever()

    async def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        await trio.sleep_forever()


async def test_a_client_refused_for_too_many_rooms_is_closed_within_close_timeout() -> None:
    config = RoomsConfig(max_rooms=1, close_timeout=0.2)
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
        registry = registry_of(rooms)
        await rooms.get("first")  # the one room there may be (idle: it stays a while)
        client = _Unread()
        request = ConnectRequest(room="second", path="/rooms/second/websocket")
        with trio.fail_after(5):
            placed = await registry.place("second", request, "json", client)
        assert placed == (1013, "too many rooms")
        assert client.closes == [(1013, "too many rooms")]
