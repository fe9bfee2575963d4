"""Admission before the upgrade: `Reject` for ``authorize``, and the connection caps.

Every check here runs before the server answers 101, so a refused client gets a
plain HTTP status and no room or session is created for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import final

from .._errors import RoomsError

__all__ = ["ConnectionCounter", "Reject"]


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
