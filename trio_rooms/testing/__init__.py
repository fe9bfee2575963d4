"""Test your rooms without a network: a typed client over in-memory streams.

::

    async with trio_rooms.open_rooms(ChatRoom) as rooms:
        async with testing.connect(rooms, "lobby") as alice:
            alice.send(SendChat(text="hi"))
            assert await alice.receive() == Chat(author="alice", text="hi")

The client speaks real WebSocket to the real embedded transport; only the socket is
replaced by a `trio.testing.memory_stream_pair`.
"""

from ._client import TestClient, connect

__all__ = ["TestClient", "connect"]
