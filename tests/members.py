"""Chat clients on raw sockets, for tests against real servers (in-process or not)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType

import orjson
import trio

from .sockets import RawClient, connect_socket, raw_handshake


class Member:
    """A chat client: its connection and what the server told it."""

    def __init__(self, client: RawClient, session: dict[str, object] | None) -> None:
        self.client = client
        self.session = session

    @classmethod
    async def join(cls, port: int, query: str = "") -> Member:
        return await cls.handshake(await connect_socket(port), query)

    @classmethod
    async def handshake(cls, stream: trio.SocketStream, query: str) -> Member:
        """Join the lobby over the TCP connection ``stream``."""
        client = await raw_handshake(stream, f"/rooms/lobby/websocket?{query}")
        session = None
        if "resume=" in query:
            first = await client.receive_text()
            session = orjson.loads(first)["$session"]
        return cls(client, session)

    @property
    def session_id(self) -> str:
        assert self.session is not None
        session_id = self.session["id"]
        assert isinstance(session_id, str)
        return session_id

    @property
    def token(self) -> str:
        assert self.session is not None
        token = self.session["token"]
        assert isinstance(token, str)
        return token

    @property
    def resumed(self) -> bool:
        assert self.session is not None
        resumed = self.session["resumed"]
        assert isinstance(resumed, bool)
        return resumed

    async def say(self, text: str) -> None:
        await self.client.send_text(orjson.dumps({"type": "message", "text": text}).decode())

    async def send(self, message: dict[str, object]) -> None:
        await self.client.send_text(orjson.dumps(message).decode())

    async def receive(self) -> dict[str, object]:
        message: dict[str, object] = orjson.loads(await self.client.receive_text())
        return message

    async def chats(self, prefix: str) -> str:
        """The text of the next chat starting with ``prefix`` (skipping everything else)."""
        text = (await self.chat(prefix))["text"]
        assert isinstance(text, str)
        return text

    async def chat(self, prefix: str) -> dict[str, object]:
        """The next chat whose text starts with ``prefix`` (skipping everything else)."""
        while True:
            message = await self.receive()
            text = message.get("text")
            if message.get("type") == "chat" and isinstance(text, str) and text.startswith(prefix):
                return message

    async def name(self) -> object:
        """The name the server has for this member (asked with a whisper)."""
        await self.send({"type": "whisper", "text": "whoami"})
        return (await self.chat("whoami"))["name"]

    async def aclose(self) -> None:
        await self.client.stream.aclose()

    async def __aenter__(self) -> Member:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


@asynccontextmanager
async def joined_at_once(ports: Sequence[int], query: str) -> AsyncGenerator[list[Member]]:
    """One member per port of ``ports``, all joining at once with ``query``; closed on exit.

    Every TCP connection is made first; then all handshakes are sent together, so the
    server admits the members concurrently.
    """
    members = await join_at_once(ports, query)
    try:
        yield members
    finally:
        await close_all(members)


async def join_at_once(ports: Sequence[int], query: str) -> list[Member]:
    """One member per port of ``ports``, all joining at once with ``query``.

    Every TCP connection is made first; then all handshakes are sent together, so the
    server admits the members concurrently.
    """
    members: list[Member | None] = [None] * len(ports)
    streams: list[trio.SocketStream] = []
    all_connected = trio.Event()

    async def one(index: int, port: int) -> None:
        stream = await connect_socket(port)
        streams.append(stream)
        if len(streams) == len(ports):
            all_connected.set()
        await all_connected.wait()
        members[index] = await Member.handshake(stream, query)

    try:
        async with trio.open_nursery() as nursery:
            for index, port in enumerate(ports):
                nursery.start_soon(one, index, port)
    except BaseException:
        for stream in streams:
            await trio.aclose_forcefully(stream)
        raise
    joined = [member for member in members if member is not None]
    assert len(joined) == len(ports)
    return joined


async def close_all(members: Iterable[Member]) -> None:
    for member in members:
        await member.aclose()
