"""Exceptions raised by trio_rooms.

::

    RoomsError
    ├── DecodeError (ValueError)        a frame or body did not decode to a known message
    ├── RoomNameError (ValueError)      a room name outside the documented pattern
    ├── ConnectionClosedError (trio.BrokenResourceError)
    │                                   a client's connection was closed by the server or lost
    ├── StorageError                    a storage backend failed to read or write
    │   └── OwnershipLostError          a room's write was refused: another node owns it now
    ├── BackplaneError                  the backplane's broker could not be reached
    ├── OwnedElsewhereError             the room runs on another node (single-owner mode)
    ├── RoomsClosedError (trio.ClosedResourceError)
    │                                   the rooms (or this room) are shutting down
    ├── TooManyRoomsError (RuntimeError)
    │                                   a new room would go past RoomsConfig.max_rooms
    ├── PresenceLimitError (ValueError) a presence over RoomsConfig.max_presence_size, or
    │                                   one more than RoomsConfig.max_presences_per_room
    ├── RequestError                    a request got no reply: its handler refused or failed
    └── SessionClosedError (trio.ClosedResourceError)
                                        an action on a session that has already ended
"""

from __future__ import annotations

import trio

__all__ = [
    "BackplaneError",
    "ConnectionClosedError",
    "DecodeError",
    "OwnedElsewhereError",
    "OwnershipLostError",
    "PresenceLimitError",
    "RequestError",
    "RoomNameError",
    "RoomsClosedError",
    "RoomsError",
    "SessionClosedError",
    "TooManyRoomsError",
]


class RoomsError(Exception):
    """Base class of every exception trio_rooms raises on purpose."""


class DecodeError(RoomsError, ValueError):
    """A frame could not be decoded into one of the expected messages.

    ``str(error)`` is the precise reason, with the field path where one applies, for
    example ``expected int @ $.items[1].id``. It is what the default
    ``Session.on_invalid`` sends back to the client. ``frame`` is the frame as it was
    received, when the error is about one (``Session.on_invalid`` always gets it).
    """

    def __init__(self, *args: object, frame: str | bytes | None = None) -> None:
        super().__init__(*args)
        self.frame = frame


class RoomNameError(RoomsError, ValueError):
    """A room name does not match ``trio_rooms.ROOM_NAME_PATTERN``."""

    def __init__(self, name: str) -> None:
        shown = name if len(name) <= 40 else name[:40] + "..."
        super().__init__(f"invalid room name {shown!r}: expected 1-128 of A-Z a-z 0-9 _ . ~ -")
        self.name = name


class ConnectionClosedError(RoomsError, trio.BrokenResourceError):
    """A client's connection ended: the server closed it, or the network dropped it.

    ``code`` is the close code the server sent (1006 when the connection was lost
    without a close frame); ``reason`` its reason.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class RoomsClosedError(RoomsError, trio.ClosedResourceError):
    """The rooms are shutting down, or the room is stopping: nothing new is admitted."""


class OwnedElsewhereError(RoomsError):
    """The room ``room`` runs on another node now: `Rooms.get` cannot give it here.

    In the single-owner mode (``open_rooms(..., cluster=...)``) a room lives on the node
    holding its lease; clients of the other nodes are served through it.
    """

    def __init__(self, room: str) -> None:
        super().__init__(f"room {room!r} is owned by another node")
        self.room = room


class TooManyRoomsError(RoomsError, RuntimeError):
    """A room would be created past ``RoomsConfig.max_rooms``; ``limit`` is that cap.

    A `RuntimeError` like `RecursionError`: a configured limit was reached, and the
    same call can succeed once rooms have been evicted.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"the server is at its limit of {limit} rooms (RoomsConfig.max_rooms)")
        self.limit = limit


class PresenceLimitError(RoomsError, ValueError):
    """A presence was refused by one of the room's presence limits; nothing changed.

    ``limit`` names the `RoomsConfig` field (``"max_presence_size"`` or
    ``"max_presences_per_room"``).
    """

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class StorageError(RoomsError):
    """A storage backend failed; nothing was written (the cause is chained)."""


class OwnershipLostError(StorageError):
    """This node does not own the room any more: its writes are refused.

    Raised when the storage refused a write whose fencing token (``token``) is older
    than the room's fence (``fence``: another node took the room's lease since), and
    for the writes a room attempts after its lease ended (``fence`` None). Nothing of
    the refused write was stored, and the room stops on this node at once.
    """

    def __init__(self, room: str, token: int, fence: int | None = None) -> None:
        if fence is None:
            why = f"this node's lease on it (fencing token {token}) has ended"
        else:
            why = f"write with fencing token {token} refused below the room's fence {fence}"
        super().__init__(f"room {room!r}: {why}: another node may own it now")
        self.room = room
        self.token = token
        self.fence = fence


class BackplaneError(RoomsError):
    """The backplane could not reach its broker in time (the cause is chained)."""


class SessionClosedError(RoomsError, trio.ClosedResourceError):
    """The session has ended; nothing more can be sent on it or persisted for it."""


class RequestError(RoomsError):
    """A request got an error instead of its reply; ``reason`` says why.

    A request handler raises it to refuse a request: its ``reason`` goes to the
    client as it is. Any other exception of a handler reaches the client as
    ``"internal error"`` (and the session's ``on_error``). ``RoomClient.request``
    raises it with the server's reason, or when the connection was lost after the
    request was written and before its reply came (the handler may have run).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
