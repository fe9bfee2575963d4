"""Nodes of two versions of the relay protocol on one Redis refuse each other, loudly.

Node ``a`` and ``b`` run `tests.owner_app` in this process on one real redis-server; a
node of another version is faked by writing what it would into Redis: its lease and
record, or its entries on ``a``'s relay stream, whose answers are read back from its own.
"""

from __future__ import annotations

import logging

import pytest
import trio

from trio_rooms._resp import RespConnection, open_resp
from trio_rooms.backplane._relay_entries import (
    END,
    OPEN,
    PROTOCOL,
    REQUEST,
    RESPONSE,
    Entry,
    EntryError,
    decode_all,
    encode,
)

from .owner_app import serve_owner_rooms
from .redis_server import RedisServer
from .sockets import open_raw
from .test_routes import http

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
PATIENCE = 20.0
#: The body of an OPEN before the protocol had a version (version 1).
OLD_OPEN: tuple[object, ...] = ("game", "json", GAME, "", [], None, [], 32, "")
#: The body of a REQUEST of version 1, for the route that never answers in a first start.
OLD_REQUEST: tuple[object, ...] = ("game", "GET", "/rooms/game/slow", "", [], b"", None)


async def _read_entries(redis: RespConnection, node: str, count: int) -> list[Entry]:
    """The first ``count`` entries on ``node``'s relay stream, waiting for them in Redis."""
    key = f"trio_rooms:relay:{node}".encode()
    found: list[Entry] = []
    after = b"0-0"
    while len(found) < count:
        reply = await redis.call(b"XREAD", b"BLOCK", b"0", b"STREAMS", key, after)
        assert isinstance(reply, list)
        stream = reply[0]
        assert isinstance(stream, list)
        items = stream[1]
        assert isinstance(items, list)
        for item in items:
            assert isinstance(item, list)
            entry_id, fields = item
            assert isinstance(entry_id, bytes)
            assert isinstance(fields, list)
            data = fields[1]
            assert isinstance(data, bytes)
            after = entry_id
            for entry in decode_all(data):
                assert not isinstance(entry, EntryError)
                found.append(entry)
    return found


async def test_a_client_of_an_owner_of_another_version_is_closed_with_1012_unrelayed(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client whose room is owned by a node of another protocol version (or of one that
    advertises none) is closed with 1012, a route of the room answers 503, the log names
    the node and both versions once, and nothing is written to that node's stream."""
    url = redis_server.url
    for node, record in (("old", None), ("new", str(PROTOCOL + 1))):
        room = f"room-{node}"
        assert redis_server.command("SET", f"trio_rooms:lease:{room}", f"{node}:7") == b"+OK\r\n"
        if record is not None:
            assert redis_server.command("SET", f"trio_rooms:node:{node}", record) == b"+OK\r\n"
        with trio.fail_after(PATIENCE), caplog.at_level(logging.WARNING, "trio_rooms"):
            async with serve_owner_rooms(url, "b") as (rooms_b, port_b):
                for _ in range(2):
                    async with open_raw(port_b, f"/rooms/{room}/websocket") as on_b:
                        assert await on_b.close_code() == 1012
                answer = await http(port_b, "GET", f"/rooms/{room}/slow")
                assert (answer.status, answer.headers["retry-after"]) == (503, "1")
                assert rooms_b.statistics().rooms == 0
        said = "none" if record is None else repr(record)
        warned = f"node {node!r} speaks relay protocol {said}, this node {PROTOCOL}"
        assert sum(warned in record.getMessage() for record in caplog.records) == 1
        assert redis_server.command("XLEN", f"trio_rooms:relay:{node}") == b":0\r\n"


async def test_old_and_malformed_entries_are_refused_and_the_link_and_room_go_on(
    redis_server: RedisServer,
) -> None:
    """An OPEN and a REQUEST without a version are answered END 1012 and RESPONSE 503 (a
    node of any version passes these on to its client), entries that are not entries are
    dropped, and the owner's room and relays go on serving a client of node b."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            open_resp(url, timeout=1.0) as redis,
            serve_owner_rooms(url, "a") as (rooms_a, port_a),
            serve_owner_rooms(url, "b") as (_, port_b),
            open_raw(port_a, GAME) as on_a,
        ):
            assert await on_a.receive_json() == {"type": "welcome", "node": "a", "starts": 1}
            stream = b"trio_rooms:relay:a"
            written = [
                encode(OPEN, "old", "x.1", 1, *OLD_OPEN),
                b"\xc1 not msgpack",
                encode("zz", "old", "x.3", 1),
                encode(REQUEST, "old", "x.2", 1, *OLD_REQUEST),
            ]
            for data in written:
                assert isinstance(await redis.call(b"XADD", stream, b"*", b"e", data), bytes)
            answers = {entry.relay: entry for entry in await _read_entries(redis, "old", 2)}
            assert answers["x.1"].kind == END
            assert answers["x.1"].body[0] == 1012
            assert answers["x.2"].kind == RESPONSE
            assert answers["x.2"].body[0] == 503
            async with open_raw(port_b, GAME) as on_b:
                assert await on_b.receive_json() == {"type": "welcome", "node": "a", "starts": 1}
                await on_b.send_text('{"type": "add"}')
                assert await on_b.receive_json() == {"type": "counted", "stored": 1, "local": 1}
            room = await rooms_a.get("game")
            assert room.starts == 1
