"""The typed client against a server whose ``$session`` does not match what it asked.

A resume asks for one session (its token names it); a server that answers
``"resumed": true`` with another session's id did not resume that one. The client
takes it as the fresh session it is: counted from 0 (its next resume does not ask the
server to skip messages of the other session), reported as not resumed. Real sockets:
a scripted trio-websocket server on 127.0.0.1, port 0.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson
import trio
import trio_websocket

from trio_rooms.client import Reconnected, ReconnectPolicy, open_room_client

from .chat_app import Chat, SendChat

PATIENCE = 10.0
CHAT = '{"type":"chat","userId":"u1","name":"ann","text":"hi"}'


def _session(session_id: str, token: str, *, resumed: bool) -> str:
    frame = {"$session": {"id": session_id, "token": token, "resumed": resumed}}
    return orjson.dumps(frame).decode()


@attrs.define
class ScriptedServer:
    """Connection ``n`` gets ``scripts[n]``, then a close with 1012 (a retried code)."""

    scripts: Sequence[Sequence[str]]
    #: The query of each connection's request, in order.
    queries: list[dict[str, list[str]]] = attrs.field(factory=list[dict[str, list[str]]])
    last_seen: trio.Event = attrs.field(factory=trio.Event)

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        self.queries.append(parse_qs(urlsplit(request.path).query))
        n = len(self.queries) - 1
        ws = await request.accept()
        if n >= len(self.scripts):
            self.last_seen.set()
            await ws.aclose(1008)  # a code the client does not retry: it ends
            return
        for frame in self.scripts[n]:
            await ws.send_message(frame)
        # The client has read them all once it answers a ping after them.
        await ws.ping()
        await ws.aclose(1012)


async def test_a_resume_answered_with_another_sessions_id_counts_from_0() -> None:
    server = ScriptedServer(
        [
            [_session("A", "A.t1", resumed=False), CHAT, CHAT, CHAT],
            # The server claims to resume, but it is session B: not the one asked for.
            [_session("B", "B.t1", resumed=True), CHAT],
        ]
    )
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                trio_websocket.serve_websocket, server.handle, "127.0.0.1", 0, None
            )
            port = listeners.port
            async with open_room_client(
                f"ws://127.0.0.1:{port}/rooms/lobby/websocket",
                (Chat,),
                (SendChat,),
                resume=True,
                reconnect=ReconnectPolicy(initial_delay=0.01, max_delay=0.01, max_attempts=1),
                rng=random.Random(0),
            ) as client:
                for _ in range(4):
                    assert isinstance(await client.receive(), Chat)
                event = await client.events.receive()
                assert isinstance(event, Reconnected)
                assert (event.session_id, event.previous_session_id) == ("B", "A")
                assert not event.resumed  # B is not the session A resumed
                await server.last_seen.wait()
            nursery.cancel_scope.cancel()
    assert server.queries[1]["resume"] == ["A.t1"]
    assert server.queries[1]["seen"] == ["3"]
    assert server.queries[2]["resume"] == ["B.t1"]
    assert server.queries[2]["seen"] == ["1"]  # B's own count, not A's 3 + 1
