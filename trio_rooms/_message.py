"""The ``Message`` base class and its wire tag."""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = ["Message", "camel_case"]

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
    ``tag = "..."`` to choose another.
    """

    __slots__ = ()
    tag: ClassVar[str]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "tag" not in cls.__dict__:
            cls.tag = camel_case(cls.__name__)
        elif not isinstance(cls.__dict__["tag"], str) or not cls.__dict__["tag"]:
            raise TypeError(f"{cls.__qualname__}.tag must be a non-empty str")
