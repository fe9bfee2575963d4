"""What a session's runner talks to: the user's hooks and its room.

`SessionHooks` is the `Session` as its runner calls it; `RoomSide` is the `RoomRunner` as
the session's runner uses it. Protocols, so the runner imports neither class.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from .._errors import DecodeError
from .._message import Message
from ..codec import WireFormat
from .config import RoomsConfig
from .gate import Gate
from .presence_board import PresenceBoard
from .replay import RoomLog
from .request import ConnectRequest
from .room_state import RoomState
from .stats import Counters, RoomCounters
from .storage import Storage

__all__ = ["RoomSide", "SessionHooks"]

#: The session runners the room holds (`runner.SessionRunner`): a parameter, so that
#: this module and the runner's do not import each other.
RunnerT = TypeVar("RunnerT")


class SessionHooks(Protocol):
    """What a runner calls of the session it runs: the `Session` hooks."""

    def message_classes(self) -> tuple[tuple[type[Message], ...], tuple[type[Message], ...]]: ...

    async def create_data(self, request: ConnectRequest) -> Any: ...  # noqa: ANN401 - DataT

    async def on_resume(self) -> None: ...

    async def on_resync(self) -> None: ...

    async def on_connect(self) -> None: ...

    async def on_message(self, message: Any) -> None: ...  # noqa: ANN401 - ClientMsgT

    async def on_bytes(self, data: bytes) -> None: ...

    async def on_invalid(self, error: DecodeError) -> None: ...

    async def on_error(self, error: Exception) -> None: ...

    async def on_close(self, code: int, reason: str) -> None: ...


class RoomSide(Protocol[RunnerT]):
    """What a session's runner uses of its room's runner (a `RoomRunner`)."""

    @property
    def room(self) -> object:
        """The `Room` façade, which `Session.room` returns."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> RoomsConfig: ...

    @property
    def counters(self) -> Counters: ...

    @property
    def delivery_counters(self) -> RoomCounters:
        """Where the room's sessions count what their delivery policies did."""
        ...

    @property
    def storage(self) -> Storage: ...

    @property
    def state(self) -> RoomState:
        """The room's cached, coalesced storage, and its output gate."""
        ...

    @property
    def gate(self) -> Gate:
        """The room's input gate: every hook of the session runs holding it."""
        ...

    @property
    def log(self) -> RoomLog:
        """The room's replay log."""
        ...

    @property
    def presence(self) -> PresenceBoard[Any] | None:
        """The room's presences, if its class declares a `Presence`."""
        ...

    @property
    def broadcasts(self) -> int:
        """Broadcasts the room delivered so far (`SessionRunner.sent` counts from them)."""
        ...

    def decode_logged(self, wire: WireFormat, payload: bytes) -> Message:
        """A logged server message, decoded from ``wire``."""
        ...

    @property
    def stopping(self) -> bool: ...

    @property
    def runners(self) -> dict[str, RunnerT]: ...

    def add(self, runner: RunnerT) -> None: ...

    def remove(self, runner: RunnerT) -> None: ...

    def session_ended(self, runner: RunnerT) -> None: ...

    def going(self, runner: RunnerT, *, drains: bool) -> None: ...

    async def wait_gone(self, session_id: str) -> None: ...

    def hand_over(self, session_id: str) -> None: ...
