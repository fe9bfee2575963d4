"""Presence is typed by the room's metadata class: reads and joins check it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Never, assert_type

import attrs

import trio_rooms
from trio_rooms import (
    ConnectRequest,
    Message,
    PresenceEntry,
    Room,
    RoomClient,
    RoomPresence,
    Session,
    open_room_client,
)
from trio_rooms.client import ClientPresence, PresenceChanged, PresenceMeta, Reconnected, Resynced


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


async def a_client_with_presence(url: str) -> None:
    async with open_room_client(url, DeviceSession, presence=Device) as client:
        assert_type(client, RoomClient[Ping, Ping, Device])
        assert_type(client.presence, ClientPresence[Device])
        assert_type(client.presence["ann"][0], PresenceMeta[Device])
        assert_type(client.presence["ann"][0].meta, Device)
        async for event in client.events:
            match event:
                case PresenceChanged(joins=joins, leaves=leaves):
                    assert_type(joins, Mapping[str, tuple[PresenceMeta[Device], ...]])
                    assert_type(leaves["ann"][0].meta, Device)
                case Reconnected() | Resynced():
                    pass
    async with open_room_client(url, DeviceSession) as plain:
        assert_type(plain, RoomClient[Ping, Ping])
        assert_type(plain.presence, ClientPresence[Never])
    async with open_room_client(url, server=(Ping,), client=(Ping,), presence=Device) as tupled:
        assert_type(tupled, RoomClient[Ping, Ping, Device])
