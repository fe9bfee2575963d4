"""Stateful, strictly typed WebSocket rooms on trio."""

from ._core.config import ROOM_NAME_PATTERN as ROOM_NAME_PATTERN
from ._core.config import RoomsConfig as RoomsConfig
from ._core.memory import MemoryStorage as MemoryStorage
from ._core.request import ConnectRequest as ConnectRequest
from ._core.room import Room as Room
from ._core.rooms import Rooms as Rooms
from ._core.rooms import open_rooms as open_rooms
from ._core.session import Session as Session
from ._core.stats import RoomsStatistics as RoomsStatistics
from ._core.storage import RoomStorage as RoomStorage
from ._core.storage import Storage as Storage
from ._errors import ConnectionClosedError as ConnectionClosedError
from ._errors import DecodeError as DecodeError
from ._errors import RoomNameError as RoomNameError
from ._errors import RoomsClosedError as RoomsClosedError
from ._errors import RoomsError as RoomsError
from ._errors import SessionClosedError as SessionClosedError
from ._errors import StorageError as StorageError
from ._message import Message as Message
from .codec import WireFormat as WireFormat
from .storage.sqlite import SqliteStorage as SqliteStorage
from .transports.websocket import serve_websocket as serve_websocket

__all__ = [
    "ROOM_NAME_PATTERN",
    "ConnectRequest",
    "ConnectionClosedError",
    "DecodeError",
    "MemoryStorage",
    "Message",
    "Room",
    "RoomNameError",
    "RoomStorage",
    "Rooms",
    "RoomsClosedError",
    "RoomsConfig",
    "RoomsError",
    "RoomsStatistics",
    "Session",
    "SessionClosedError",
    "SqliteStorage",
    "Storage",
    "StorageError",
    "WireFormat",
    "open_rooms",
    "serve_websocket",
]
