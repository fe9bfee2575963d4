"""Red team: a relayed client's ``seen=`` that is not a plain count of frames.

The owner refuses such a ``seen`` with ``$resync`` (`runner._count`); the relaying node
parses it too (`MovableConnection`, to count on from it), and must not fail where the
owner does not: ``seen=²`` (a digit to `str.isdigit`, not to `int`), 5,000 digits
(past `int`'s string limit). Each connection still gets its session, and the node stays up.
"""

from __future__ import annotations

import pytest
import trio

from .redis_server import RedisServer
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
