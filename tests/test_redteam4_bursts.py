"""Red team 4: a client that sends its handshake and 1,000 messages in one write.

Many tiny frames in one TCP segment, all before the 101 is read: every message is
handled once, in order, and answered after the 101. Embedded server only: hypercorn
0.18 answers a handshake with even one frame in the same write 400 (its h11 reads the
frame as a second request), a limit of hypercorn left to it.
"""

from __future__ import annotations

import orjson
import pytest
import trio

from trio_rooms import RoomsConfig

from .sockets import (
    TEXT,
    RawClient,
    client_frame,
    connect_socket,
    handshake_request,
    read_http_response,
)

MESSAGES = 1000


pytestmark = pytest.mark.embedded_only("hypercorn refuses frames sent before its 101")


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(rate_limit=None)


async def test_a_thousand_messages_sent_with_the_handshake_are_each_answered_in_order(
    port: int,
) -> None:
    frames = b"".join(
        client_frame(TEXT, orjson.dumps({"type": "whisper", "text": f"w-{n}"}))
        for n in range(MESSAGES)
    )
    stream = await connect_socket(port)
    async with stream:
        await stream.send_all(handshake_request("/rooms/lobby/websocket") + frames)
        with trio.fail_after(20):
            status, head, rest = await read_http_response(stream)
            assert status == 101, head
            client = RawClient(stream, rest)
            seen: list[str] = []
            while len(seen) < MESSAGES:
                message = orjson.loads(await client.receive_text())
                if message.get("type") == "chat":
                    seen.append(message["text"])
    assert seen == [f"w-{n}" for n in range(MESSAGES)]
