"""What a relay stream holds, read back from a real redis-server by the relay tests."""

from __future__ import annotations

from trio_rooms._resp import RespConnection


async def stream_data(connection: RespConnection, key: bytes) -> list[bytes]:
    """The data of each entry of the relay stream ``key`` (its one field), oldest first."""
    reply = await connection.call(b"XRANGE", key, b"-", b"+")
    assert isinstance(reply, list)
    found: list[bytes] = []
    for item in reply:
        assert isinstance(item, list)
        fields = item[1]
        assert isinstance(fields, list)
        data = fields[1]
        assert isinstance(data, bytes)
        found.append(data)
    return found
