"""Test your rooms without a network: typed clients over in-memory streams.

::

    async with trio_rooms.open_rooms(ChatRoom) as rooms:
        async with testing.open_test_client(rooms, "lobby") as alice:
            alice.send(SendChat(text="hi"))
            assert await alice.receive() == Chat(author="alice", text="hi")

`open_test_client` is the production `RoomClient` (reconnect and resume included);
`connect` is a bare client that can also send raw frames (``send_frame``), for testing
how a room takes invalid input. Both speak real WebSocket to the real embedded
transport; only the socket is replaced by a `trio.testing.memory_stream_pair`.
"""

from ._client import TestClient, connect
from ._open import open_test_client

__all__ = ["TestClient", "connect", "open_test_client"]
