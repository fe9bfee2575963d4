"""Presence metadata of the wrong class, or presence in a room that declares none, is flagged."""

from __future__ import annotations

import attrs

from trio_rooms import ConnectRequest, Room, Session

from .right_presence import Device, DeviceRoom, Ping


@attrs.frozen
class Other:
    name: str


class WrongMeta(Session[None, Ping, Ping, DeviceRoom]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Ping) -> None:
        self.join_presence("ann", Other("phone"))  # expect: reportArgumentType
        self.update_presence("phone")  # expect: reportArgumentType
        self.join_presence(7, Device("phone"))  # expect: reportArgumentType


class NoPresence(Session[None, Ping, Ping, "PlainRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Ping) -> None:
        # expect: reportAttributeAccessIssue, reportUnknownMemberType
        self.join_presence("ann", Device("phone"))
        self.subscribe_presence()  # expect: reportAttributeAccessIssue, reportUnknownMemberType


class PlainRoom(Room[NoPresence]):
    pass
