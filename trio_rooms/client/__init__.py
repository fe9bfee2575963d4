"""A typed client for trio_rooms servers that reconnects and resumes its session.

::

    async with open_room_client(url, server=(Chat, UserJoined), client=(SendChat,)) as client:
        client.send(SendChat(text="hi"))
        async for message in client:
            ...
"""

from ._client import RoomClient as RoomClient
from ._client import open_room_client as open_room_client
from ._errors import ClientQueueFullError as ClientQueueFullError
from ._errors import ConnectError as ConnectError
from ._errors import ConnectionRejectedError as ConnectionRejectedError
from ._errors import ConnectTimeoutError as ConnectTimeoutError
from ._errors import ServerError as ServerError
from ._events import ClientEvent as ClientEvent
from ._events import PresenceChanged as PresenceChanged
from ._events import PresenceMeta as PresenceMeta
from ._events import Reconnected as Reconnected
from ._events import Resynced as Resynced
from ._policy import RETRIED_CLOSE_CODES as RETRIED_CLOSE_CODES
from ._policy import ReconnectPolicy as ReconnectPolicy
from ._presence import ClientPresence as ClientPresence

__all__ = [
    "RETRIED_CLOSE_CODES",
    "ClientEvent",
    "ClientPresence",
    "ClientQueueFullError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionRejectedError",
    "PresenceChanged",
    "PresenceMeta",
    "ReconnectPolicy",
    "Reconnected",
    "Resynced",
    "RoomClient",
    "ServerError",
    "open_room_client",
]
