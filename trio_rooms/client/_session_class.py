"""``SessionClass``: a server's session class, as the client reads its two unions from it.

The client never imports the server's core: any class with a ``send`` of the server
messages, an ``on_message`` of the client messages and ``message_classes()`` (every
`trio_rooms.Session` subclass) will do, and pyright reads both unions from it.
"""

from __future__ import annotations

import logging
from typing import Protocol, TypeVar

from .._errors import DecodeError
from .._message import Message

__all__ = ["SessionClass", "log_invalid", "message_classes_of"]

_logger = logging.getLogger("trio_rooms.client")

ServerMsgT_contra = TypeVar("ServerMsgT_contra", bound=Message, contravariant=True)
ClientMsgT_contra = TypeVar("ClientMsgT_contra", bound=Message, contravariant=True)


class SessionClass(Protocol[ServerMsgT_contra, ClientMsgT_contra]):
    """What the client uses of a session class: its messages, in both directions."""

    def send(self, message: ServerMsgT_contra) -> None:
        """The session sends server messages: their union is what the client receives."""
        ...

    async def on_message(self, message: ClientMsgT_contra) -> None:
        """The session takes client messages: their union is what the client sends."""
        ...

    @classmethod
    def message_classes(cls) -> tuple[tuple[type[Message], ...], tuple[type[Message], ...]]:
        """The client and the server message classes."""
        ...


def message_classes_of(
    session: object,
) -> tuple[tuple[type[Message], ...], tuple[type[Message], ...]]:
    """The (client, server) message classes of a session class.

    Raises:
        TypeError: ``session`` has no ``message_classes()`` (it is not a session class),
            or its messages are not bound (a generic session class).
    """
    read = getattr(session, "message_classes", None)
    if not isinstance(session, type) or read is None:
        raise TypeError(
            f"expected a Session subclass or two tuples of message classes, got {session!r}"
        )
    classes: tuple[tuple[type[Message], ...], tuple[type[Message], ...]] = read()
    return classes


def log_invalid(error: DecodeError) -> None:
    """The default ``on_invalid``: log the frame that is not a server message, and go on."""
    frame = error.frame
    shown = repr(frame[:200]) if frame is not None else "?"
    _logger.warning("skipped a frame that is not one of the server messages (%s): %s", error, shown)
