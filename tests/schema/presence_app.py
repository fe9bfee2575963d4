"""A room with presence: the golden files' third room (``golden/presence``).

Its metadata holds an enum, a nested class, an optional and bytes, so the msgpack
contract names the meta's twin; the messages hold no bytes.
"""

from __future__ import annotations

import enum

import attrs

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session


class Status(enum.Enum):
    ONLINE = "online"
    AWAY = "away"


@attrs.frozen
class Place:
    room: str
    seat: int


@attrs.frozen
class Member:
    """The presence metadata."""

    display_name: str
    status: Status
    place: Place | None = None
    avatar: bytes = b""


@attrs.frozen
class SetStatus(Message):
    status: Status


@attrs.frozen
class Said(Message):
    text: str


class PresenceSession(Session[None, Said, SetStatus, "PresenceRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.join_presence(self.id, Member(display_name="guest", status=Status.ONLINE))
        self.subscribe_presence()

    async def on_message(self, message: SetStatus) -> None:
        self.update_presence(Member(display_name="guest", status=message.status))


class PresenceRoom(Room[PresenceSession]):
    presence = trio_rooms.Presence(Member)
