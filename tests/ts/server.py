"""The room the TypeScript client's tests talk to, on SQLite so that a restart keeps sessions.

Run as ``python -m tests.ts.server DB_PATH [PORT]`` from the repository root: serves on
127.0.0.1 (PORT 0 or none: a free port; a restarted server can take the same one again),
prints ``PORT <n>`` once listening, and shuts down gracefully (1001) on SIGINT or SIGTERM.
The client's schema for it is ``clients/typescript/test/room.schema.ts`` (the module the
schema export generates); ``stale.schema.ts`` beside it is an older client's.
"""

from __future__ import annotations

import sys
from typing import assert_never

import attrs
import trio

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session

from ..processes import serve_until_signalled

# ------------------------------------------------------------------ client messages


@attrs.frozen
class Echo(Message):
    """Answered with `Echoed` of the same fields."""

    text: str
    numbers: tuple[int, ...]


@attrs.frozen
class SetName(Message):
    """Stores ``name`` in the session's data with ``update()``; answered with `NameSet`."""

    name: str


@attrs.frozen
class WhoAmI(Message):
    """Answered with `You`: the session's id and stored name."""


@attrs.frozen
class Bye(Message):
    """The server closes this connection with ``code`` and ``reason``."""

    code: int
    reason: str


@attrs.frozen
class SendOdd(Message):
    """Answered with `Odd` and `Unlisted`, which an older client's schema does not accept,
    then `Echoed` with the text ``"after odd"``."""


@attrs.frozen
class Reverse(Message):
    """Answered with `Reversed`: ``data`` and each of ``parts`` byte-reversed."""

    data: bytes
    parts: list[bytes]
    note: bytes | None = None


ClientMsg = Echo | SetName | WhoAmI | Bye | SendOdd | Reverse

# ------------------------------------------------------------------ server messages


@attrs.frozen
class Echoed(Message):
    text: str
    numbers: tuple[int, ...]


@attrs.frozen
class NameSet(Message):
    name: str


@attrs.frozen
class You(Message):
    session_id: str
    name: str


@attrs.frozen
class Odd(Message):
    """An older client's schema says ``value`` is a number."""

    value: str


@attrs.frozen
class Unlisted(Message):
    """Not in an older client's schema at all."""


@attrs.frozen
class Reversed(Message):
    data: bytes
    parts: list[bytes]
    size: int
    note: bytes | None = None


ServerMsg = Echoed | NameSet | You | Odd | Unlisted | Reversed


@attrs.define
class Named:
    name: str = "anon"


class TestSession(Session[Named, ServerMsg, ClientMsg]):
    async def create_data(self, request: ConnectRequest) -> Named:
        return Named()

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case Echo(text=text, numbers=numbers):
                self.send(Echoed(text=text, numbers=numbers))
            case SetName(name=name):
                self.data.name = name
                await self.update()  # durable before it is acknowledged
                self.send(NameSet(name=name))
            case WhoAmI():
                self.send(You(session_id=self.id, name=self.data.name))
            case Bye(code=code, reason=reason):
                await self.close(code, reason)
            case SendOdd():
                self.send(Odd(value="not a number"))
                self.send(Unlisted())
                self.send(Echoed(text="after odd", numbers=()))
            case Reverse(data=data, parts=parts, note=note):
                self.send(
                    Reversed(
                        data=data[::-1], parts=[p[::-1] for p in parts], size=len(data), note=note
                    )
                )
            case _:
                assert_never(message)


class TestRoom(Room[TestSession]):
    pass


async def main(path: str, port: int) -> None:
    storage = trio_rooms.SqliteStorage(path)
    async with trio_rooms.open_rooms(TestRoom, storage=storage) as rooms:
        await serve_until_signalled(rooms, port)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
