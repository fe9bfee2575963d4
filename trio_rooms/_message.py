"""The ``Message`` base class, its wire tag, and the wire names of fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Final

from ._delivery import Coalesce, DeliveryPolicy, Disconnect, DropOldest

__all__ = ["WIRE_NAME", "Message", "camel_case", "wire"]

#: The attrs metadata key holding a field's own wire name (see `wire`).
WIRE_NAME: Final = "trio_rooms.wire"

_WORD_BOUNDARY = re.compile(r"_([a-z0-9])")


def camel_case(name: str) -> str:
    """``user_id`` -> ``userId``; ``SetName`` -> ``setName``."""
    name = _WORD_BOUNDARY.sub(lambda m: m.group(1).upper(), name)
    return name[:1].lower() + name[1:]


class Message:
    """Base class of every client and server message.

    Subclasses are attrs classes (``@attrs.frozen``). On the wire a message is an
    object whose ``"type"`` is the class's tag: by default the class name in
    lowerCamelCase (``SetName`` -> ``"setName"``); set a plain class attribute
    ``tag = "..."`` to choose another. Its fields go on the wire in lowerCamelCase
    (``RoomsConfig.camel_case``); `wire` gives one field a name of its own.

    ``delivery`` (a plain class attribute too) is what a session's full outbound queue
    does with the class's messages: `Disconnect` (the default), `DropOldest` or
    `Coalesce`; a send's ``policy=`` overrides it.
    """

    __slots__ = ()
    tag: ClassVar[str]
    delivery: ClassVar[DeliveryPolicy] = Disconnect()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "tag" not in cls.__dict__:
            cls.tag = camel_case(cls.__name__)
        elif not isinstance(cls.__dict__["tag"], str) or not cls.__dict__["tag"]:
            raise TypeError(f"{cls.__qualname__}.tag must be a non-empty str")
        delivery: object = cls.__dict__.get("delivery", cls.delivery)
        if not isinstance(delivery, Disconnect | DropOldest | Coalesce):
            raise TypeError(
                f"{cls.__qualname__}.delivery must be Disconnect(), DropOldest() or "
                f"Coalesce(...), got {delivery!r}"
            )


def wire(name: str) -> Mapping[str, str]:
    """Field metadata that gives an attrs field its own wire name.

    ::

        @attrs.frozen
        class Chat(Message):
            message: str
            from_: str = attrs.field(metadata=trio_rooms.wire("from"))

        # on the wire: {"type": "chat", "message": "hi", "from": "ann"}

    The name is used as it is, in both directions, by both codecs, the clients and
    the schema export (``camel_case`` applies to the other fields only). Merge it with
    metadata of your own as ``metadata={**wire("from"), ...}``. Two fields on one
    wire name, a name starting with ``$`` (library frames) or a message field named
    ``type`` (the tag) are a `TypeError` when a codec is built.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is empty.
    """
    if not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance] - untyped callers
        raise TypeError(f"a wire name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("a wire name must not be empty")
    return {WIRE_NAME: name}
