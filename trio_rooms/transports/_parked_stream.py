"""The end of a parked connection's task, for a later task to run it on."""

from __future__ import annotations

from typing import final

import trio

from .._core.admission import ConnectionCounter
from .._core.serving import ParkedSession
from ._opening import PendingUpgrade
from ._stream_io import close_stream, log_failure

__all__ = ["ParkedStream"]


@final
class ParkedStream:
    """A connection whose session parked: the end of its task, for a later one to run.

    The connection's task returns once it is watched by its server's `Parking`; its
    next task runs the session on from there and ends the connection as the first one
    would have (the keepalive entry, the connection's count, the socket).
    """

    __slots__ = ("_address", "_counter", "_peer", "_session", "_stream", "_upgrade")

    def __init__(
        self,
        stream: trio.abc.Stream,
        peer: tuple[str, int] | None,
        counter: ConnectionCounter,
        address: str | None,
        upgrade: PendingUpgrade,
        session: ParkedSession,
    ) -> None:
        self._stream = stream
        self._peer = peer
        self._counter = counter
        self._address = address
        self._upgrade = upgrade
        self._session = session

    async def settle(self) -> None:
        """Leave the connection to its server's waiter, or run it on here if it cannot."""
        try:
            parked = self._park()
        except Exception as exc:  # one connection's failure must never reach the listener
            log_failure(exc, self._peer)
            parked = False
        if not parked:
            await self.resume()

    def _park(self) -> bool:
        connection = self._upgrade.connection
        if connection is None or not self._session.wake_with(self.wake):
            return False
        if not connection.park(self):
            return False
        self._session.held()  # parked only now: counted once its socket is watched
        return True

    def wake(self) -> None:
        """The session needs its tasks (its writer, its close): start its task now."""
        connection = self._upgrade.connection
        if connection is not None:
            connection.wake()

    def readable(self) -> bool:
        connection = self._upgrade.connection
        if connection is None or connection.parked_input():
            self._session.taken()
            return True
        return False

    async def resume(self) -> None:
        handed = False
        try:
            try:
                try:
                    while not handed:
                        ended = await self._session.resume()
                        if not isinstance(ended, ParkedSession):
                            break
                        handed = self._park()
                finally:
                    if not handed:
                        self._upgrade.ended()
            finally:
                if not handed:
                    self._counter.exit(self._address)
        except Exception as exc:
            log_failure(exc, self._peer)
        finally:
            if not handed:
                await close_stream(self._stream)
