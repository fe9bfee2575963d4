"""The demo chat room: its messages, its session and its room, on public names only.

Wire protocol (JSON text frames, one message per frame, lowerCamelCase names):

Client to server:
    ``{"type": "sendChat", "text": "..."}``    post a message (1 to 2000 characters)
    ``{"type": "setName", "name": "..."}``     rename yourself (1 to 32 characters)

Server to client, on connect and in this order:
    ``members``   ``{"selfId": id, "members": [{"userId": id, "name": name}, ...]}``:
                  everyone in the room now, this session included (``selfId``)
    ``history``   ``{"messages": [...]}``: the room's last 50 chat messages, oldest
                  first, each with the fields of ``chat`` (and no ``"type"``)

Server to client, afterwards:
    ``chat``        ``{"userId", "name", "text", "sentAt"}`` (``sentAt``: ms since the epoch)
    ``userJoined``  ``{"userId", "name"}``, to everyone but the newcomer
    ``userLeft``    ``{"userId", "name"}``
    ``renamed``     ``{"userId", "oldName", "name"}``
    ``rejected``    ``{"reason"}``: to the sender only, when a message fails validation

Validation: surrounding whitespace is stripped from names and messages; a name must
then be 1 to 32 printable characters and a message 1 to 2000 characters. An invalid
``sendChat`` or ``setName`` is not applied: the sender gets a ``rejected`` message
and stays connected. The name asked for at connect time is the ``name`` query
parameter (``?name=``); without one, the session gets a generated guest name
(``guest-1234``), and with an invalid one, a guest name and a ``rejected`` message.

The history lives in memory in the room: it survives page reloads while the room is
alive (``ROOM_IDLE_TIMEOUT`` after its last session left), not server restarts.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from pathlib import Path
from typing import Final, assert_never, cast

import attrs
import trio

from trio_rooms import (
    ConnectRequest,
    Message,
    Room,
    RoomsConfig,
    Session,
    open_rooms,
    serve_websocket,
)

from ._http import serve_static

__all__ = [
    "HISTORY_SIZE",
    "MAX_NAME_LENGTH",
    "MAX_TEXT_LENGTH",
    "Chat",
    "ChatData",
    "ChatRoom",
    "ChatSession",
    "ClientMsg",
    "History",
    "Member",
    "Members",
    "Rejected",
    "Renamed",
    "SendChat",
    "ServerMsg",
    "SetName",
    "UserJoined",
    "UserLeft",
    "serve_demo",
]

#: Chat messages a room keeps and sends to a newly connected session.
HISTORY_SIZE: Final = 50
MAX_NAME_LENGTH: Final = 32
MAX_TEXT_LENGTH: Final = 2000
#: Seconds an empty room (and its history) is kept; long enough to survive a reload.
ROOM_IDLE_TIMEOUT: Final = 300.0

STATIC_DIR: Final = Path(__file__).parent / "static"

# ------------------------------------------------------------------ client messages


@attrs.frozen
class SendChat(Message):
    text: str


@attrs.frozen
class SetName(Message):
    name: str


ClientMsg = SendChat | SetName

# ------------------------------------------------------------------ server messages


@attrs.frozen
class Member:
    """One session of the room, as the member list shows it."""

    user_id: str
    name: str


@attrs.frozen
class Chat(Message):
    user_id: str
    name: str
    text: str
    #: Milliseconds since the epoch, by the server's wall clock.
    sent_at: int


@attrs.frozen
class Members(Message):
    """Everyone in the room; sent to a session when it connects."""

    self_id: str
    members: tuple[Member, ...]


@attrs.frozen
class History(Message):
    """The room's last chat messages, oldest first; sent to a session when it connects."""

    messages: tuple[Chat, ...]


@attrs.frozen
class UserJoined(Message):
    user_id: str
    name: str


@attrs.frozen
class UserLeft(Message):
    user_id: str
    name: str


@attrs.frozen
class Renamed(Message):
    user_id: str
    old_name: str
    name: str


@attrs.frozen
class Rejected(Message):
    """A client message that failed validation and was not applied."""

    reason: str


ServerMsg = Members | History | Chat | UserJoined | UserLeft | Renamed | Rejected

# ---------------------------------------------------------------------- validation


def clean_name(name: str) -> str | None:
    """``name`` without surrounding whitespace, or None if it is not a valid name."""
    name = name.strip()
    if 1 <= len(name) <= MAX_NAME_LENGTH and name.isprintable():
        return name
    return None


def clean_text(text: str) -> str | None:
    """``text`` without surrounding whitespace, or None if it is not a valid message."""
    text = text.strip()
    if 1 <= len(text) <= MAX_TEXT_LENGTH:
        return text
    return None


_NAME_RULE: Final = f"a name must be 1 to {MAX_NAME_LENGTH} printable characters"
_TEXT_RULE: Final = f"a message must be 1 to {MAX_TEXT_LENGTH} characters"

# ------------------------------------------------------------------ session and room


@attrs.define
class ChatData:
    name: str
    #: Set when the name asked for at connect time was invalid and replaced.
    rejected_name: bool = False


class ChatSession(Session[ChatData, ServerMsg, ClientMsg]):
    """One browser tab in a chat room."""

    @property
    def room(self) -> ChatRoom:
        # Session.room is typed Room[Self]; this session only ever runs in a ChatRoom.
        return cast("ChatRoom", super().room)

    async def create_data(self, request: ConnectRequest) -> ChatData:
        asked = request.query.get("name")
        name = None if asked is None else clean_name(asked)
        if name is None:
            guest = f"guest-{secrets.randbelow(10_000):04}"
            return ChatData(name=guest, rejected_name=asked is not None)
        return ChatData(name=name)

    async def on_connect(self) -> None:
        room = self.room
        members = tuple(
            Member(user_id=session.id, name=session.data.name) for session in room.sessions.values()
        )
        self.send(Members(self_id=self.id, members=members))
        self.send(History(messages=tuple(room.history)))
        if self.data.rejected_name:
            self.send(Rejected(reason=f"{_NAME_RULE}; you are {self.data.name}"))
        self.broadcast(UserJoined(user_id=self.id, name=self.data.name), exclude_self=True)

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case SendChat(text=raw):
                text = clean_text(raw)
                if text is None:
                    self.send(Rejected(reason=_TEXT_RULE))
                    return
                chat = Chat(
                    user_id=self.id,
                    name=self.data.name,
                    text=text,
                    sent_at=time.time_ns() // 1_000_000,
                )
                self.room.history.append(chat)
                self.broadcast(chat)
            case SetName(name=raw):
                name = clean_name(raw)
                if name is None:
                    self.send(Rejected(reason=_NAME_RULE))
                    return
                old_name, self.data.name = self.data.name, name
                if name != old_name:
                    self.broadcast(Renamed(user_id=self.id, old_name=old_name, name=name))
            case _:
                assert_never(message)

    async def on_close(self, code: int, reason: str) -> None:
        self.broadcast(UserLeft(user_id=self.id, name=self.data.name))


class ChatRoom(Room[ChatSession]):
    """A chat room that remembers its last `HISTORY_SIZE` messages."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.history: deque[Chat] = deque(maxlen=HISTORY_SIZE)


# --------------------------------------------------------------------------- server


async def serve_demo(
    host: str,
    http_port: int,
    ws_port: int,
    *,
    task_status: trio.TaskStatus[tuple[int, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the chat page on ``http_port`` and its rooms on ``ws_port`` until cancelled.

    The page finds the WebSocket port in ``/config.json`` (``{"wsPort": N}``), so the
    two ports need not be neighbours; pass 0 for free ones. With ``nursery.start``,
    returns ``(http_port, ws_port)`` as bound, once both servers listen. When
    cancelled, sessions are closed with 1001 before this returns.
    """
    config = RoomsConfig(room_idle_timeout=ROOM_IDLE_TIMEOUT)
    servers = trio.CancelScope()

    async def run(*, task_status: trio.TaskStatus[tuple[int, int]]) -> None:
        # Shielded: a cancellation from outside would also cancel the sessions' writers
        # inside open_rooms, and the clients would get no close frame (1006). Instead,
        # it cancels `servers` and open_rooms is left normally: 1001 to every client.
        with trio.CancelScope(shield=True):
            async with open_rooms(ChatRoom, config=config) as rooms:
                with servers:
                    async with trio.open_nursery() as nursery:
                        ws: int = await nursery.start(serve_websocket, rooms, host, ws_port)
                        documents = {
                            "/config.json": (
                                "application/json",
                                json.dumps({"wsPort": ws}).encode(),
                            )
                        }
                        http: int = await nursery.start(
                            serve_static, STATIC_DIR, host, http_port, documents
                        )
                        task_status.started((http, ws))

    async with trio.open_nursery() as nursery:
        ports: tuple[int, int] = await nursery.start(run)
        task_status.started(ports)
        try:
            await trio.sleep_forever()
        finally:
            servers.cancel()
