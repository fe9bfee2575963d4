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

`wall_clock`, `fire_due_alarms` and `evict` make durable alarms and room eviction
deterministic: a wall clock that follows ``trio.testing.MockClock`` (or any function),
the due alarms fired now, a room stopped now as if idle.
"""

from ._alarms import evict, fire_due_alarms, wall_clock
from ._client import TestClient, connect
from ._open import open_test_client

__all__ = ["TestClient", "connect", "evict", "fire_due_alarms", "open_test_client", "wall_clock"]
