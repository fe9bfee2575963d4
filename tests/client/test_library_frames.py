"""How the client takes library frames a server sends, including malformed ones."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing
import trio_websocket

from trio_rooms import ConnectionClosedError, DecodeError
from trio_rooms.client import ReconnectPolicy, RoomClient, ServerError, open_room_client

from ..chat_app import Chat, SendChat

CHAT = '{"type":"chat","userId":"u1","name":"ann","text":"after"}'


@attrs.define
class Server:
    """A WebSocket server that sends a script of frames to each client, then waits."""

    nursery: trio.Nursery
    frames: Sequence[str | bytes]
    #: The close code of each connection, as the server saw it.
    closes: list[int] = attrs.field(factory=list[int])
    closed: trio.Event = attrs.field(factory=trio.Event)
    #: Close each connection with this code after the script (None: wait for the client).
    close_with: int | None = None
    #: The request target of each connection, in order.
    resources: list[str] = attrs.field(factory=list[str])

    async def open_stream(self) -> trio.abc.Stream:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self._serve, server_stream)
        return client_stream

    async def _serve(self, stream: trio.abc.Stream) -> None:
        request = await trio_websocket.wrap_server_stream(self.nursery, stream)
        self.resources.append(request.path)
        ws = await request.accept()
        for frame in self.frames:
            await ws.send_message(frame)
        if self.close_with is not None:
            await ws.aclose(self.close_with)
            return
        try:
            await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            self.closes.append(exc.reason.code if exc.reason is not None else 1006)
            self.closed.set()


@asynccontextmanager
async def _client(
    server: Server, *, resume: bool, on_invalid: Callable[[DecodeError], None] | None = None
) -> AsyncGenerator[RoomClient[Chat, SendChat]]:
    async with open_room_client(
        "ws://testserver/rooms/lobby/websocket",
        (Chat,),
        (SendChat,),
        resume=resume,
        reconnect=ReconnectPolicy(max_attempts=0),
        on_invalid=on_invalid,
        open_stream=server.open_stream,
    ) as client:
        yield client


async def test_an_error_frame_raises_server_error_with_its_text(nursery: trio.Nursery) -> None:
    """A well-formed {"error": text} frame raises ServerError carrying the text."""
    server = Server(nursery, ['{"error":"no such action"}', CHAT])
    async with _client(server, resume=False) as client:
        with pytest.raises(ServerError) as raised:
            await client.receive()
        assert raised.value.text == "no such action"
        assert isinstance(await client.receive(), Chat)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('{"error":5}', "expected 'error' to be a string, got int"),
        ('{"$resync":1}', "expected '$resync' to be a map, got int"),
        (
            '{"$session":{"id":"a","token":"a.t","resumed":false}}',
            "unexpected $session frame in the middle of a connection",
        ),
    ],
)
async def test_a_library_frame_out_of_place_goes_to_on_invalid_and_keeps_the_connection(
    nursery: trio.Nursery, frame: str, reason: str
) -> None:
    """A malformed or misplaced library frame goes to on_invalid; the next message arrives."""
    invalid: list[DecodeError] = []
    server = Server(nursery, [frame, CHAT])
    async with _client(server, resume=False, on_invalid=invalid.append) as client:
        assert await client.receive() == Chat(user_id="u1", name="ann", text="after")
    assert [(str(e), e.frame) for e in invalid] == [(reason, frame)]


@pytest.mark.parametrize(
    ("first", "told"),
    [
        (
            '{"$session":{"id":7,"token":"a.t","resumed":false}}',
            "expected the $session frame first: expected '$session.id' to be a string, got int",
        ),
        (CHAT, f"expected the $session frame first, got {CHAT!r}"),
    ],
)
async def test_a_resumable_connection_not_opened_by_a_session_frame_closes_with_1002(
    nursery: trio.Nursery, first: str, told: str
) -> None:
    """Without a well-formed $session frame first, the client closes with 1002 and says why."""
    server = Server(nursery, [first])
    with pytest.raises(ConnectionClosedError) as raised:
        async with _client(server, resume=True):
            pytest.fail("connected")
    assert (raised.value.code, raised.value.reason) == (1002, told)
    with trio.fail_after(5):
        await server.closed.wait()
    assert server.closes == [1002]


async def test_its_own_session_frame_mid_connection_gives_the_token_the_next_resume_sends(
    nursery: trio.Nursery,
) -> None:
    """A mid-connection $session naming the client's own session, resumed (what a server
    that moved it to another node sends), is not invalid: the next resume sends its token."""
    opened = '{"$session":{"id":"s1","token":"s1.old","resumed":false}}'
    moved = '{"$session":{"id":"s1","token":"s1.new","resumed":true,"replayed":0}}'
    invalid: list[DecodeError] = []
    server = Server(nursery, [opened, moved, CHAT], close_with=1012)
    async with open_room_client(
        "ws://testserver/rooms/lobby/websocket",
        (Chat,),
        (SendChat,),
        resume=True,
        reconnect=ReconnectPolicy(initial_delay=0.01, jitter=0, max_attempts=1),
        on_invalid=invalid.append,
        open_stream=server.open_stream,
    ) as client:
        assert await client.receive() == Chat(user_id="u1", name="ann", text="after")
        assert await client.receive() == Chat(user_id="u1", name="ann", text="after")
        assert client.session_id == "s1"
    assert invalid == []
    assert "resume=s1.new" in server.resources[1]
