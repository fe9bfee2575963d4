"""Red team 5: tokens that must not resume, presented to a node that relays the room.

Three nodes of `tests.attack_app` in this process on one real redis-server: ``a`` owns
room ``game``, ``c`` owns room ``other``, ``b`` owns neither. A token of another room,
a forged one, a spent one and an expired one (its record gone from Redis, as Redis
expires it) get, through ``b``, what they get from the room's owner: a fresh session,
with no close and no harm to the session the token named.
"""

from __future__ import annotations

import logging
from typing import cast

import coredis
import orjson
import pytest
import trio

from .attack_app import AttackRoom, serve_attack_rooms
from .redis_server import RedisServer
from .sockets import connect_socket, raw_handshake
from .test_cluster_attacks import Client, Message, joined, settled

pytestmark = pytest.mark.slow

PATIENCE = 30.0


def _loads(text: str) -> Message:
    return cast("Message", orjson.loads(text))


async def _join(port: int, room: str, token: str) -> tuple[Client, Message]:
    """A client of ``room`` that asks to resume with ``token``: it and its ``$session``."""
    stream = await connect_socket(port)
    raw = await raw_handshake(stream, f"/rooms/{room}/websocket?resume={token}")
    session = cast("Message", _loads(await raw.receive_text())["$session"])
    welcome = _loads(await raw.receive_text())
    assert welcome["type"] == "welcome", welcome
    return Client(raw, session, welcome), session


@pytest.mark.parametrize("kind", ["other-room", "forged", "spent", "expired"])
@pytest.mark.parametrize("through", ["owner", "relaying"])
async def test_a_token_that_does_not_resume_gets_a_fresh_session_on_any_node(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, kind: str, through: str
) -> None:
    """A token of another room (owned by a third node), a forged, a spent or an expired
    one opens a fresh session whether the room's owner or a relaying node is asked; the
    session it names is left as it was, and nothing is logged as a warning."""
    url = redis_server.url
    room_name = "other" if kind == "other-room" else "game"
    owner_of = {"game": "a", "other": "c"}
    with trio.fail_after(PATIENCE):
        async with (
            coredis.Redis.from_url(url) as redis,
            serve_attack_rooms(url, "a") as (rooms_a, port_a),
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
            serve_attack_rooms(url, "c") as (rooms_c, port_c),
        ):
            owner = await Client.join(port_a)
            other_owner = await raw_handshake(
                await connect_socket(port_c), "/rooms/other/websocket"
            )
            assert _loads(await other_owner.receive_text())["node"] == "c"
            victim = await Client.join(port_b, "resume=")
            assert victim.welcome["node"] == "a"
            token = victim.token
            async with joined([owner, victim, Client(other_owner, None, {})]):
                await victim.send({"type": "add"})
                assert (await victim.receive())["adds"] == 1
                victim_open = True
                if kind == "forged":
                    session_id, _, secret = token.partition(".")
                    token = f"{session_id}.{'A' * len(secret)}"
                elif kind == "spent":
                    taker = await Client.join(port_b, f"resume={token}")
                    assert taker.resumed
                    assert await victim.raw.close_code() == 4001
                    await taker.aclose()
                    victim_open = False
                elif kind == "expired":
                    await victim.aclose()
                    victim_open = False
                    room = await rooms_a.get("game")
                    # Counted once it ended, its record written at the close: then gone.
                    await rooms_a.wait_statistics(lambda stats: stats.closes == {1006: 1})
                    assert victim.id in room.closes
                    key = f"trio_rooms:session:game:{victim.id}".encode()
                    assert await redis.delete([key]) == 1
                port = {"owner": {"game": port_a, "other": port_c}[room_name], "relaying": port_b}
                with caplog.at_level(logging.WARNING, logger="trio_rooms"):
                    fresh, session = await _join(port[through], room_name, token)
                    async with joined([fresh]):
                        assert session["resumed"] is False, session
                        assert session["id"] != victim.id
                        assert fresh.welcome == {
                            "type": "welcome",
                            "node": owner_of[room_name],
                            "session": session["id"],
                        }
                        await fresh.send({"type": "echo", "n": 7})
                        assert await fresh.receive() == {"type": "echoed", "n": 7}
                        if victim_open:
                            # Not taken over: the victim is served on.
                            await victim.send({"type": "echo", "n": 8})
                            assert await victim.receive() == {"type": "echoed", "n": 8}
                warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
                assert warnings == [], [r.getMessage() for r in warnings]
                if victim_open:
                    # Nor was its token spent: it resumes the victim's session, data and all.
                    await victim.aclose()
                    back = await Client.join(port_b, f"resume={victim.token}")
                    async with joined([back]):
                        assert (back.resumed, back.id) == (True, victim.id)
                        await back.send({"type": "add"})
                        assert (await back.receive())["adds"] == 2
            await settled(rooms_b)
            game: AttackRoom = await rooms_a.get("game")
            assert game.resumes[victim.id] == (1 if kind == "spent" or victim_open else 0)
            for rooms in (rooms_a, rooms_b, rooms_c):
                assert rooms.statistics().errors == 0
