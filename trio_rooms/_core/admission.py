"""Admission before the upgrade: origin, connection caps, room capacity, ``authorize``.

Every check here runs before the server answers 101, so a refused client gets a
plain HTTP status and no room or session is created for it.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, final

from .._errors import RoomsError

if TYPE_CHECKING:
    from .room import Room

__all__ = ["ConnectionCounter", "Reject", "origin_allowed", "room_class_of"]


class Reject(RoomsError):
    """Refuse a connection before its upgrade: raise it from `Session.authorize`.

    The client gets HTTP ``status`` with ``reason`` as a plain-text body::

        @classmethod
        async def authorize(cls, request: ConnectRequest) -> None:
            if request.query.get("key") != SECRET:
                raise Reject(401, "a valid key is required")
    """

    def __init__(self, status: int = 403, reason: str = "Forbidden") -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"Reject needs an HTTP error status (400-599), got {status}")
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


def origin_allowed(origin: str | None, allowed: frozenset[str] | None) -> bool:
    """Whether a handshake's ``Origin`` header passes the allow-list.

    No list allows every origin. A request without ``Origin`` is not from a browser:
    such a client can send any header it likes, so the list (a defence against
    cross-site WebSocket hijacking in browsers) lets it through.
    """
    if allowed is None or origin is None:
        return True
    return normalize_origin(origin) in allowed


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a trailing slash."""
    return origin.strip().rstrip("/").lower()


@final
class ConnectionCounter:
    """Open connections, in all and per client address, against their caps.

    A connection counts from the moment the transport accepted it (during its
    handshake too: a slowloris client holds a slot) until it is closed; an HTTP route
    request counts from its head until its response is sent (a slow body holds a slot).
    """

    __slots__ = ("_by_address", "_changed", "_max_per_address", "_max_total", "total")

    def __init__(
        self, max_total: int, max_per_address: int, changed: Callable[[], None] = lambda: None
    ) -> None:
        self._max_total = max_total
        self._max_per_address = max_per_address
        self._by_address: Counter[str] = Counter()
        self._changed = changed
        self.total = 0

    def enter(self, address: str | None) -> None:
        self.total += 1
        if address is not None:
            self._by_address[address] += 1
        self._changed()

    def exit(self, address: str | None) -> None:
        self.total -= 1
        if address is not None:
            left = self._by_address[address] - 1
            if left:
                self._by_address[address] = left
            else:
                del self._by_address[address]
        self._changed()

    def over_cap(self, address: str | None) -> str | None:
        """Why a connection that has entered is one too many; None if it is within the caps."""
        if self.total > self._max_total:
            return f"the server is at its limit of {self._max_total} connections"
        if address is not None and self._by_address[address] > self._max_per_address:
            return f"too many connections from {address} (at most {self._max_per_address})"
        return None


def room_class_of(factory: object) -> type[Room[Any]] | None:
    """The room class a factory makes: itself, or a ``functools.partial``'s function.

    None for any other callable: only a room it made tells its class.
    """
    from .room import Room  # the room module imports this one

    while isinstance(factory, functools.partial):
        factory = factory.func
    if isinstance(factory, type) and issubclass(factory, Room):
        return factory  # pyright: ignore[reportUnknownVariableType]
    return None
