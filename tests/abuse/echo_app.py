"""An echo room for the conformance run: every text and binary message comes back as it was."""

# The typed session cannot send arbitrary text (only its server messages, or bytes with
# send_bytes): every text frame is invalid for it, and its on_invalid echoes the frame
# it is told about through the session's runner; a public raw text send would make
# this plain.

from __future__ import annotations

from typing import Any

import attrs

from trio_rooms import ConnectRequest, DecodeError, Message, Room, RoomsConfig, Session
from trio_rooms._core.outbound import TEXT, Frame
from trio_rooms._core.session import runner_of

MiB = 1024 * 1024


@attrs.frozen
class Nothing(Message):
    """The typed messages of the echo session: none is ever sent or expected."""


class EchoSession(Session[None, Nothing, Nothing]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Nothing) -> None:
        pass  # no client sends {"type": "nothing"}

    async def on_bytes(self, data: bytes) -> None:
        self.send_bytes(data)

    async def on_invalid(self, error: DecodeError) -> None:
        if isinstance(error.frame, str):
            runner_of(self).enqueue(Frame(TEXT, error.frame.encode()))


class EchoRoom(Room[EchoSession]):
    pass


def echo_config() -> RoomsConfig:
    """Limits for the Autobahn cases: 16 MiB messages, thousands of them as fast as echoed."""
    settings: dict[str, Any] = {
        "max_message_size": 17 * MiB,
        "outbound_max_bytes": 64 * MiB,
        "max_invalid_in_a_row": 2**31,  # every text frame is "invalid" for the echo session
    }
    if "rate_limit" in attrs.fields_dict(RoomsConfig):  # the per-session message rate limit
        settings["rate_limit"] = None
    return RoomsConfig(**settings)
