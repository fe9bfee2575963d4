"""An echo room for the conformance run: every text and binary message comes back as it was."""

# The typed session cannot send arbitrary text (only its server messages, or bytes with
# send_bytes), so text is echoed through the session's protected hooks; a public raw
# text send would make this plain.
# pyright: reportPrivateUsage=false

from __future__ import annotations

from typing import Any

import attrs

from trio_rooms import ConnectRequest, Message, Room, RoomsConfig, Session
from trio_rooms._core.outbound import TEXT, Frame

MiB = 1024 * 1024


@attrs.frozen
class Nothing(Message):
    """The typed messages of the echo session: none is ever sent or expected."""


class EchoSession(Session[None, Nothing, Nothing]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Nothing) -> None:
        pass  # every frame goes through _dispatch

    async def on_bytes(self, data: bytes) -> None:
        self.send_bytes(data)

    async def _dispatch(self, item: str | bytes) -> None:
        if isinstance(item, str):
            self._enqueue(Frame(TEXT, item.encode()))
        else:
            await self.on_bytes(item)


class EchoRoom(Room[EchoSession]):
    pass


def echo_config() -> RoomsConfig:
    """Limits for the Autobahn cases: 16 MiB messages, thousands of them as fast as echoed."""
    settings: dict[str, Any] = {
        "max_message_size": 17 * MiB,
        "outbound_max_bytes": 64 * MiB,
    }
    if "rate_limit" in attrs.fields_dict(RoomsConfig):  # the per-session message rate limit
        settings["rate_limit"] = None
    return RoomsConfig(**settings)
