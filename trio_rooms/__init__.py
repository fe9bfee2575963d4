"""Stateful, strictly typed WebSocket rooms on trio."""

import importlib
from typing import TYPE_CHECKING

from ._core.admission import Reject as Reject
from ._core.backplane import Backplane as Backplane
from ._core.backplane import BackplaneStatistics as BackplaneStatistics
from ._core.config import ROOM_NAME_PATTERN as ROOM_NAME_PATTERN
from ._core.config import ReplayLimits as ReplayLimits
from ._core.config import RoomsConfig as RoomsConfig
from ._core.memory import MemoryStorage as MemoryStorage
from ._core.ownership import Cluster as Cluster
from ._core.presence import Presence as Presence
from ._core.presence import RoomPresence as RoomPresence
from ._core.presence_board import PresenceEntry as PresenceEntry
from ._core.request import ConnectRequest as ConnectRequest
from ._core.room import Room as Room
from ._core.room_storage import RoomStorage as RoomStorage
from ._core.rooms import Rooms as Rooms
from ._core.rooms import open_rooms as open_rooms
from ._core.routes import HttpRequest as HttpRequest
from ._core.routes import Response as Response
from ._core.routes import route as route
from ._core.session import PresenceRoom as PresenceRoom
from ._core.session import Session as Session
from ._core.session import SessionRoom as SessionRoom
from ._core.stats import RoomsStatistics as RoomsStatistics
from ._core.stats import RoomStatistics as RoomStatistics
from ._core.storage import Storage as Storage
from ._delivery import Coalesce as Coalesce
from ._delivery import DeliveryPolicy as DeliveryPolicy
from ._delivery import Disconnect as Disconnect
from ._delivery import DropOldest as DropOldest
from ._errors import BackplaneError as BackplaneError
from ._errors import ConnectionClosedError as ConnectionClosedError
from ._errors import DecodeError as DecodeError
from ._errors import OwnedElsewhereError as OwnedElsewhereError
from ._errors import OwnershipLostError as OwnershipLostError
from ._errors import PresenceLimitError as PresenceLimitError
from ._errors import RequestError as RequestError
from ._errors import RoomNameError as RoomNameError
from ._errors import RoomsClosedError as RoomsClosedError
from ._errors import RoomsError as RoomsError
from ._errors import SessionClosedError as SessionClosedError
from ._errors import StorageError as StorageError
from ._errors import TooManyRoomsError as TooManyRoomsError
from ._message import Message as Message
from ._message import wire as wire
from ._rpc import Request as Request
from ._rpc import replies as replies
from ._run import open_signal_scope as open_signal_scope
from ._run import run as run
from .codec import WireFormat as WireFormat
from .transports.websocket import serve_websocket as serve_websocket

if TYPE_CHECKING:
    from .client import ClientQueueFullError as ClientQueueFullError
    from .client import ConnectError as ConnectError
    from .client import ConnectionRejectedError as ConnectionRejectedError
    from .client import ConnectTimeoutError as ConnectTimeoutError
    from .client import Reconnected as Reconnected
    from .client import ReconnectPolicy as ReconnectPolicy
    from .client import Resynced as Resynced
    from .client import RoomClient as RoomClient
    from .client import ServerError as ServerError
    from .client import open_room_client as open_room_client
    from .storage.sqlite import SqliteStorage as SqliteStorage
    from .transports.asgi import asgi_app as asgi_app
    from .transports.asgi import bind_asgi as bind_asgi
    from .transports.asgi import hypercorn_config as hypercorn_config

__all__ = [
    "ROOM_NAME_PATTERN",
    "Backplane",
    "BackplaneError",
    "BackplaneStatistics",
    "ClientQueueFullError",
    "Cluster",
    "Coalesce",
    "ConnectError",
    "ConnectRequest",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ConnectionRejectedError",
    "DecodeError",
    "DeliveryPolicy",
    "Disconnect",
    "DropOldest",
    "HttpRequest",
    "MemoryStorage",
    "Message",
    "OwnedElsewhereError",
    "OwnershipLostError",
    "Presence",
    "PresenceEntry",
    "PresenceLimitError",
    "PresenceRoom",
    "ReconnectPolicy",
    "Reconnected",
    "Reject",
    "ReplayLimits",
    "Request",
    "RequestError",
    "Response",
    "Resynced",
    "Room",
    "RoomClient",
    "RoomNameError",
    "RoomPresence",
    "RoomStatistics",
    "RoomStorage",
    "Rooms",
    "RoomsClosedError",
    "RoomsConfig",
    "RoomsError",
    "RoomsStatistics",
    "ServerError",
    "Session",
    "SessionClosedError",
    "SessionRoom",
    "SqliteStorage",
    "Storage",
    "StorageError",
    "TooManyRoomsError",
    "WireFormat",
    "asgi_app",
    "bind_asgi",
    "hypercorn_config",
    "open_room_client",
    "open_rooms",
    "open_signal_scope",
    "replies",
    "route",
    "run",
    "serve_websocket",
    "wire",
]

# Imported at first use: the client needs trio-websocket, the ASGI app hypercorn (with
# h11 and h2) and SqliteStorage sqlite3, thousands of objects that every full collection
# of an embedded server's heap would walk again without them ever being used.
_LAZY = {
    "ClientQueueFullError": ".client",
    "ConnectError": ".client",
    "ConnectionRejectedError": ".client",
    "ConnectTimeoutError": ".client",
    "Reconnected": ".client",
    "ReconnectPolicy": ".client",
    "Resynced": ".client",
    "RoomClient": ".client",
    "ServerError": ".client",
    "open_room_client": ".client",
    "SqliteStorage": ".storage.sqlite",
    "asgi_app": ".transports.asgi",
    "bind_asgi": ".transports.asgi",
    "hypercorn_config": ".transports.asgi",
}

if not TYPE_CHECKING:  # pyright sees the imports above: no attribute is unknown to it

    def __getattr__(name: str) -> object:
        home = _LAZY.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, __name__), name)
        globals()[name] = value  # once: the next look-up finds it
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})
