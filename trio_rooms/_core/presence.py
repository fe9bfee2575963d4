"""``Presence``: who is in a room, with typed metadata, declared by the room class.

::

    @attrs.frozen
    class Device:
        name: str
        kind: str

    class ChatRoom(Room[ChatSession]):
        presence = trio_rooms.Presence(Device)

    class ChatSession(Session[ChatData, ServerMsg, ClientMsg, "ChatRoom"]):
        async def on_connect(self) -> None:
            self.join_presence(self.data.user_id, Device(name="phone", kind="mobile"))
            self.subscribe_presence()

``room.presence`` is then a `RoomPresence[Device]`: a read-only mapping from each key
(a user id, say) to its presences, one per session, so a user on two devices has two.
The engine behind it is `PresenceBoard`; across nodes, `PresenceSync`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, Protocol, TypeVar, final, overload

import attrs

from .presence_board import PresenceBoard, PresenceEntry, check_meta_class

__all__ = ["Presence", "RoomPresence", "declared_presence", "presence_board"]

MetaT = TypeVar("MetaT")
MetaT_co = TypeVar("MetaT_co", covariant=True)


class _Entries(Protocol[MetaT_co]):
    """What a `RoomPresence` reads of its room's `PresenceBoard`."""

    @property
    def by_key(self) -> Mapping[str, Mapping[str, PresenceEntry[MetaT_co]]]: ...

    @property
    def entries(self) -> Mapping[str, PresenceEntry[MetaT_co]]: ...

    def entry_of(self, session_id: str) -> PresenceEntry[MetaT_co] | None: ...


@final
class RoomPresence(Mapping[str, tuple[PresenceEntry[MetaT_co], ...]]):
    """A room's presences: key -> its entries, in the order they joined (a live view).

    What every subscribed session has been sent: with a backplane, the entries of
    every node, in the order Redis ordered their changes (a change made on this node
    shows once it has gone through Redis).
    """

    __slots__ = ("_board",)

    def __init__(self, board: _Entries[MetaT_co]) -> None:
        self._board = board

    def __getitem__(self, key: str) -> tuple[PresenceEntry[MetaT_co], ...]:
        return tuple(self._board.by_key[key].values())

    def __iter__(self) -> Iterator[str]:
        return iter(self._board.by_key)

    def __len__(self) -> int:
        return len(self._board.by_key)

    def entry_of(self, session_id: str) -> PresenceEntry[MetaT_co] | None:
        """The presence the session ``session_id`` has here, if any."""
        return self._board.entry_of(session_id)

    def count(self) -> int:
        """How many presences the room has, over every key."""
        return len(self._board.entries)

    def __repr__(self) -> str:
        return f"RoomPresence({dict(self)!r})"


@final
class Presence(Generic[MetaT]):
    """Declares that a room tracks presence, with metadata of the attrs class ``meta``.

    A class attribute of the room class (its name is yours: ``presence`` below)::

        class ChatRoom(Room[ChatSession]):
            presence = trio_rooms.Presence(Device)

    Read on a room, it is that room's `RoomPresence`. Sessions join with
    `Session.join_presence`, change their metadata with `Session.update_presence` and
    leave with `Session.leave_presence`, or by closing; a session that called
    `Session.subscribe_presence` is sent the state, then every change, as library
    frames (``{"$presence": ...}``, see `trio_rooms._wire`).

    Raises:
        TypeError: ``meta`` is not an attrs class the wire can carry.
    """

    __slots__ = ("_attribute", "meta_class")

    def __init__(self, meta: type[MetaT]) -> None:
        #: The metadata class of every presence of the room.
        self.meta_class: type[MetaT] = meta
        if not attrs.has(meta):
            raise TypeError(f"Presence takes an attrs class for its metadata, got {meta!r}")
        check_meta_class(meta)
        self._attribute = "presence"

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = name

    @overload
    def __get__(self, instance: None, owner: type) -> Presence[MetaT]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> RoomPresence[MetaT]: ...

    def __get__(self, instance: object, owner: type) -> Presence[MetaT] | RoomPresence[MetaT]:
        if instance is None:
            return self
        return RoomPresence(presence_board(self, instance))


def presence_board(declared: Presence[MetaT], room: object) -> PresenceBoard[MetaT]:
    """The engine of ``room``'s presence (``declared`` on its class), made on first use."""
    slot = f"_presence_board_{declared._attribute}"  # pyright: ignore[reportPrivateUsage] - its own module
    board: PresenceBoard[MetaT] | None = vars(room).get(slot)
    if board is None:
        made = PresenceBoard[MetaT](declared.meta_class)
        setattr(room, slot, made)
        return made
    return board


def declared_presence(room_class: type) -> Presence[object] | None:
    """The `Presence` a room class declares (inherited ones too), or None.

    Raises:
        TypeError: the class declares more than one.
    """
    found: dict[str, Presence[object]] = {}
    for klass in reversed(room_class.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Presence):
                found[name] = value
            else:
                found.pop(name, None)  # hidden by a subclass's attribute
    if len(found) > 1:
        names = ", ".join(sorted(found))
        raise TypeError(f"{room_class.__qualname__} declares presence more than once: {names}")
    return next(iter(found.values()), None)
