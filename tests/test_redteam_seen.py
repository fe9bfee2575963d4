"""Red team: a relayed client's ``seen=``, as the relaying node counts on from it.

The owner refuses a ``seen`` that is no count with ``$resync``; the relaying node reads
it too (`MovableConnection`, to count on from it), and must not fail where the owner
does not: ``seen=²`` (a digit to `str.isdigit`, not to `int`), 5,000 digits (past
`int`'s string limit). And a ``seen`` sent with a token that did not resume is no count
of the new session's: the client counts from 0, so must a move of its session.
Real nodes on one real redis-server; the owner killed with SIGKILL where a session moves.
"""

from __future__ import annotations

import orjson
import pytest
import trio

from .owner_app import open_relayed_client
from .redis_server import RedisServer
from .sockets import CLOSE, client_frame, close_payload, open_raw
from .test_cluster_attacks import PATIENCE, Client, joined, serve_attack_rooms, settled

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seen", ["%C2%B2", "1" * 5000, "%D9%A3", "-1", "+3", "1e3"])
async def test_a_relayed_client_with_a_seen_that_is_no_count_gets_its_session(
    redis_server: RedisServer, seen: str
) -> None:
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "a") as (rooms_a, port_a),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
        ):
            owner = await Client.join(port_a)
            assert owner.welcome["node"] == "a"
            odd = await Client.join(port_b, f"resume=&seen={seen}")
            async with joined([owner, odd]):
                assert odd.welcome["node"] == "a"
                assert not odd.resumed
                await odd.send({"type": "echo", "n": 7})
                assert await odd.receive() == {"type": "echoed", "n": 7}
                # And the relaying node still serves the next client.
                after = await Client.join(port_b, "resume=&seen=0")
                async with joined([after]):
                    await after.send({"type": "echo", "n": 8})
                    assert await after.receive() == {"type": "echoed", "n": 8}
            await settled(rooms_b)
            await settled(rooms_a)


@pytest.mark.parametrize("counting", ["&seen=40", ""])
async def test_a_relayed_client_whose_token_did_not_resume_counts_from_0_across_a_move(
    redis_server: RedisServer, counting: str
) -> None:
    """A client of a relaying node that presents a dead token with ``seen=N`` gets a fresh
    session (``"resumed": false``), and counts its frames from 0, as the Python and
    TypeScript clients do. When the owner is killed its session is moved (resumed on the
    next owner) with that count: no spurious ``$resync``, nothing replayed, and the
    client's own resume afterwards, with its own count, replays nothing either (no frame
    it already had). Without ``seen`` it is moved counting all the same: a new session's
    count is its connection's."""
    game = "/rooms/game/websocket"
    dead_token = "x" * 24 + "." + "y" * 43
    url, query = redis_server.url, f"resume={dead_token}{counting}"
    with trio.fail_after(2 * PATIENCE):
        async with open_relayed_client(url, query) as (process_a, port_b, client, first):
            assert first["resumed"] is False
            counted = 1  # the welcome
            for _ in range(3):
                await client.send_text('{"type": "add"}')
                assert orjson.loads(await client.receive_text())["type"] == "counted"
                counted += 1
            process_a.kill()
            # Moved to b: the session's frame again, then b's welcome; nothing between.
            moved = orjson.loads(await client.receive_text())
            assert "$session" in moved, moved
            assert moved["$session"]["id"] == first["id"]
            assert moved["$session"]["resumed"] is True
            assert moved["$session"].get("replayed") == (0 if counting else None)
            welcome = orjson.loads(await client.receive_text())
            assert welcome.get("type") == "welcome", welcome
            assert welcome["node"] == "b"
            counted += 1
            await client.send(client_frame(CLOSE, close_payload(1000)))
            assert await client.close_code() == 1000
            token = moved["$session"]["token"]
            async with open_raw(port_b, f"{game}?resume={token}&seen={counted}") as back:
                session = orjson.loads(await back.receive_text())["$session"]
                assert (session["id"], session["resumed"]) == (first["id"], True)
                assert session["replayed"] == 0
