"""What `RedisStorage` makes of Redis's replies: the callbacks its commands are given.

No I/O here. Each callback checks the one shape its command answers and returns it typed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, cast, final

import attrs

__all__ = ["Refused", "as_list", "bytes_or_none", "done", "fenced", "flags", "is_one"]

T = TypeVar("T")


def is_one(response: object) -> bool:
    return response == 1


def flags(response: object) -> Sequence[bool]:
    return [flag == 1 for flag in as_list(response)]


def as_list(response: object) -> list[object]:
    assert isinstance(response, list)
    # coredis types a script's reply as anything: a list of unknowns, to pyright.
    items: list[object] = response  # pyright: ignore[reportUnknownVariableType]
    return items


def bytes_or_none(response: object) -> bytes | None:
    assert response is None or isinstance(response, bytes)
    return response


def done(response: object) -> None:
    assert response == 1


@final
@attrs.frozen
class Refused:
    """A script refused a fencing token below the room's ``fence``, writing nothing."""

    fence: int


def fenced(callback: Callable[[object], T]) -> Callable[[object], T | Refused]:
    """``callback``, or `Refused` when a script refused a token below the fence ({fence})."""

    def read(response: object) -> T | Refused:
        if not isinstance(response, list):
            return callback(response)
        (fence,) = cast("list[object]", response)
        assert isinstance(fence, int)
        return Refused(fence)

    return read
