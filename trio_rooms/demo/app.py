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

Durable state: the room's history is kept in ``room.storage`` under ``"history"``; a
chat message is stored before it is broadcast, so what anyone saw survives the room's
eviction and a server restart (on the same storage). A page connects with
``?resume=`` (then ``?resume=<token>``): its first frame is the library's
``{"$session": {"id", "token", "resumed"}}``, and a resumed session keeps its id and
its name, which `ChatSession` persists with ``update()`` on every rename. A resumed
session ignores ``?name=``. A message or rename that could not be stored is not
applied either: the sender gets a ``rejected`` message.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Final, assert_never

import attrs
import hypercorn.trio
import trio

from trio_rooms import (
    ConnectRequest,
    Message,
    Room,
    RoomsConfig,
    Session,
    Storage,
    StorageError,
    bind_asgi,
    hypercorn_config,
    open_rooms,
)

from ._site import demo_app

__all__ = [
    "HISTORY_KEY",
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
#: Seconds an empty room is kept alive (its history is in storage either way).
ROOM_IDLE_TIMEOUT: Final = 300.0
#: The key of a room's history in ``room.storage``: a list of `Chat`, oldest first.
HISTORY_KEY: Final = "history"

_logger = logging.getLogger("trio_rooms.demo")

STATIC_DIR: Final = Path(__file__).parent / "static"

# ------------------------------------------------------------------ client messages


@attrs.frozen
class SendChat(Message):
    """Post ``text`` to the room."""

    text: str


@attrs.frozen
class SetName(Message):
    """Rename yourself to ``name``."""

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
    """A chat message, as broadcast and as kept in the room's history."""

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
    """A session joined the room; sent to everyone but the newcomer."""

    user_id: str
    name: str


@attrs.frozen
class UserLeft(Message):
    """A session left the room."""

    user_id: str
    name: str


@attrs.frozen
class Renamed(Message):
    """A session changed its name."""

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
    """What is stored for a session (and restored when it is resumed)."""

    name: str
    #: Set when the name asked for at connect time was invalid and replaced.
    rejected_name: bool = False


class ChatSession(Session[ChatData, ServerMsg, ClientMsg, "ChatRoom"]):
    """One browser tab in a chat room."""

    async def create_data(self, request: ConnectRequest) -> ChatData:
        """The name asked for with ``?name=``, or a guest name."""
        asked = request.query.get("name")
        name = None if asked is None else clean_name(asked)
        if name is None:
            guest = f"guest-{secrets.randbelow(10_000):04}"
            return ChatData(name=guest, rejected_name=asked is not None)
        return ChatData(name=name)

    async def on_resume(self) -> None:
        """The stored name is back; an invalid first ``?name=`` was reported already."""
        self.data.rejected_name = False

    async def on_connect(self) -> None:
        """Send the member list and the history, and announce the session to the others."""
        room = self.room
        members = tuple(
            Member(user_id=session.id, name=session.data.name) for session in room.sessions.values()
        )
        self.send(Members(self_id=self.id, members=members))
        self.send(History(messages=tuple(room.history)))
        if self.data.rejected_name:
            self.data.rejected_name = False
            self.send(Rejected(reason=f"{_NAME_RULE}; you are {self.data.name}"))
        self.broadcast(UserJoined(user_id=self.id, name=self.data.name), exclude_self=True)

    async def on_message(self, message: ClientMsg) -> None:
        """Validate, store, then broadcast a chat message or a rename."""
        match message:
            case SendChat(text=raw):
                text = clean_text(raw)
                if text is None:
                    self.send(Rejected(reason=_TEXT_RULE))
                    return
                await self._post(text)
            case SetName(name=raw):
                name = clean_name(raw)
                if name is None:
                    self.send(Rejected(reason=_NAME_RULE))
                    return
                await self._rename(name)
            case _:
                assert_never(message)

    async def _post(self, text: str) -> None:
        room = self.room
        # The room's events run one at a time, so the history is stored, then broadcast,
        # in the order everyone sees it; the broadcast leaves once the history is on
        # disk. If that write fails, the room restarts and nobody sees the chat (the
        # pages reconnect and resume).
        chat = Chat(
            user_id=self.id,
            name=self.data.name,
            text=text,
            sent_at=time.time_ns() // 1_000_000,
        )
        await room.storage.put(HISTORY_KEY, [*room.history, chat][-HISTORY_SIZE:])
        room.history.append(chat)
        self.broadcast(chat)

    async def _rename(self, name: str) -> None:
        old_name = self.data.name
        if name == old_name:
            return
        self.data.name = name
        # Durable: a resumed session comes back with this name. If the write fails, the
        # room restarts and the session resumes with the old one.
        await self.update()
        self.broadcast(Renamed(user_id=self.id, old_name=old_name, name=name))

    async def on_close(self, code: int, reason: str) -> None:
        """Tell the others the session left, unless another connection resumed it."""
        if self.id in self.room.sessions:
            return  # resumed on another connection, which is in the room: nobody left
        self.broadcast(UserLeft(user_id=self.id, name=self.data.name))


class ChatRoom(Room[ChatSession]):
    """A chat room that keeps its last `HISTORY_SIZE` messages in its storage."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.history: deque[Chat] = deque(maxlen=HISTORY_SIZE)

    async def on_start(self) -> None:
        """Load the history from the room's storage."""
        try:
            stored = await self.storage.get(HISTORY_KEY, list[Chat])
        except StorageError:
            # An unreadable history (say, from another version) must not lock the room.
            _logger.warning("room %r: stored history ignored", self.name, exc_info=True)
            stored = None
        self.history.extend(stored or ())


# --------------------------------------------------------------------------- server


def page_origins(host: str, port: int) -> set[str]:
    """The origins the demo page can be loaded from when served on ``host:port``."""
    hosts = {f"[{host}]" if ":" in host else host, "localhost", "127.0.0.1", "[::1]"}
    return {f"http://{name}:{port}" for name in hosts}


async def serve_demo(
    host: str,
    port: int,
    *,
    storage: Storage | None = None,
    origins: Iterable[str] = (),
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the chat page and its rooms on one port with hypercorn's trio worker.

    ``/`` and ``/static/`` are the page; the rooms are at
    ``/rooms/<room>/websocket``. Pass port 0 for a free one; with ``nursery.start``,
    returns the bound port once hypercorn listens.

    Browsers may open the rooms only from the page itself (the origin allow-list of
    `RoomsConfig`): ``http://host:port``, with ``localhost``, ``127.0.0.1`` and
    ``[::1]`` for the host too, plus ``origins``.

    Runs until ``shutdown_trigger`` returns (or until cancelled). On the trigger the
    rooms are closed first, so every session is sent 1001 while hypercorn still
    carries the close frames; then hypercorn stops. ``storage`` (`MemoryStorage` if
    None) is flushed and closed before this returns.

    Raises:
        StorageError: ``storage`` cannot be opened.
        OSError: ``host:port`` cannot be listened on.
    """
    # Bind first: the allow-list needs the port, also when port 0 picks it.
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        port = listener.getsockname()[1]
    except BaseException:
        listener.close()
        raise
    allowed = {*page_origins(host, port), *origins}
    config = RoomsConfig(room_idle_timeout=ROOM_IDLE_TIMEOUT, allowed_origins=allowed)
    stop_hypercorn = trio.Event()
    async with trio.open_nursery() as nursery:  # hypercorn outlives the rooms
        try:
            async with open_rooms(ChatRoom, config=config, storage=storage) as rooms:
                app = demo_app(bind_asgi(rooms), STATIC_DIR)
                # hypercorn takes the socket over (and closes it) through its fd.
                server_config = hypercorn_config(config, f"fd://{listener.detach()}")
                server_config.loglevel = "WARNING"  # the demo prints its own URL
                serve = partial(
                    hypercorn.trio.serve, app, server_config, shutdown_trigger=stop_hypercorn.wait
                )
                await nursery.start(serve)
                task_status.started(port)
                await (shutdown_trigger or trio.sleep_forever)()
        finally:
            listener.close()  # a no-op once detached
            stop_hypercorn.set()
