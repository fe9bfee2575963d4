"""``Reconnected``: what the client reports each time it connects again."""

from __future__ import annotations

from typing import final

import attrs

__all__ = ["Reconnected"]


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
    """

    code: int
    reason: str
    attempts: int
    resumed: bool
    session_id: str | None
    previous_session_id: str | None
