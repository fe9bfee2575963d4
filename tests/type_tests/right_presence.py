"""Presence is typed by the room's metadata class: reads and joins check it."""

from __future__ import annotations

from typing import assert_type

import attrs

import trio_rooms
from trio_rooms import ConnectRequest, Message, PresenceEntry, Room, RoomPresence, Session


@attrs.frozen
class Device:
    name: str


@attrs.frozen
class Ping(Message):
    pass


class DeviceSession(Session[None, Ping, Ping, "DeviceRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.join_presence("ann", Device("phone"))
        self.update_presence(Device("laptop"))
        self.subscribe_presence()

    async def on_message(self, message: Ping) -> None:
        presence = self.room.presence
        assert_type(presence, RoomPresence[Device])
        assert_type(presence["ann"], tuple[PresenceEntry[Device], ...])
        assert_type(presence["ann"][0].meta, Device)
        assert_type(presence.entry_of(self.id), PresenceEntry[Device] | None)
        self.leave_presence()
        self.unsubscribe_presence()


class DeviceRoom(Room[DeviceSession]):
    presence = trio_rooms.Presence(Device)


def the_declaration_on_the_class() -> trio_rooms.Presence[Device]:
    return DeviceRoom.presence
