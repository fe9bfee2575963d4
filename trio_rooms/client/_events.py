"""What the client reports on ``client.events``: its connections, and presence changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, Never, TypeAlias, final

import attrs
from typing_extensions import TypeVar as DefaultTypeVar

__all__ = [
    "ClientEvent",
    "PresenceChanged",
    "PresenceMeta",
    "PresenceMetasOf",
    "Reconnected",
    "Resynced",
]

MetaT_co = DefaultTypeVar("MetaT_co", covariant=True, default=Never)


@final
@attrs.frozen
class Reconnected:
    """The client lost its connection and opened a new one.

    Attributes:
        code: The close code that ended the previous connection (1006 when it was lost
            without a close frame).
        reason: That close's reason.
        attempts: The connection attempts it took, this one included.
        resumed: The server resumed the session: same ``session_id``, same data.
            ``False`` for a fresh session (the token expired or the server forgot it),
            or when the client does not resume.
        session_id: The session id now, or ``None`` without ``resume``.
        previous_session_id: The session id before the reconnect.
        replayed: How many messages the client missed while away and the server sent
            again, before any new one (they come through ``receive`` as usual). ``None``
            when the room keeps no replay log (or the client does not resume); 0 when
            nothing was missed, or when it could not be replayed (then `Resynced` follows).
    """

    code: int
    reason: str
    attempts: int
    resumed: bool
    session_id: str | None
    previous_session_id: str | None
    replayed: int | None = None


@final
@attrs.frozen
class Resynced:
    """The messages missed while reconnecting could not be replayed: some are lost.

    The server's replay log no longer reached back to what the client had received.
    What the session sends next (its ``on_resync`` snapshot, if it has one) is meant to
    bring the client up to date instead. Reported after the `Reconnected` it follows.

    Attributes:
        reason: The server's explanation.
    """

    reason: str


@final
@attrs.frozen
class PresenceMeta(Generic[MetaT_co]):
    """One presence of a key, as the server sent it: one session's, with its metadata.

    Attributes:
        ref: Names this presence among the room's; an update gives it a new one.
        meta: Its metadata, decoded to the ``presence`` class given to the client.
    """

    ref: str
    meta: MetaT_co


#: Presences by key, each key's in the order they joined.
PresenceMetasOf: TypeAlias = Mapping[str, tuple[PresenceMeta[MetaT_co], ...]]


@final
@attrs.frozen
class PresenceChanged(Generic[MetaT_co]):
    """Presences came and went; ``client.presence`` shows the result already.

    Reported for every ``$presence`` frame, to a client opened with ``presence=Meta``.
    An update is the leave of its old ref and the join of a new one, in one event.

    Attributes:
        joins: The presences that joined, by key.
        leaves: The presences that left, by key (as they were when they joined).
        reset: The server sent its whole state (the session subscribed, on this
            connection or after a reconnect): ``joins`` and ``leaves`` are what
            differs from what the client held before.
    """

    joins: PresenceMetasOf[MetaT_co]
    leaves: PresenceMetasOf[MetaT_co]
    reset: bool = False


#: What ``RoomClient.events`` reports; ``ClientEvent[Meta]`` for a client of a room
#: with presence.
ClientEvent: TypeAlias = Reconnected | Resynced | PresenceChanged[MetaT_co]
