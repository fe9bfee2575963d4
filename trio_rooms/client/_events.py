"""``Reconnected`` and ``Resynced``: what the client reports about its connections."""

from __future__ import annotations

from typing import TypeAlias, final

import attrs

__all__ = ["ClientEvent", "Reconnected", "Resynced"]


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


#: What ``RoomClient.events`` reports.
ClientEvent: TypeAlias = Reconnected | Resynced
