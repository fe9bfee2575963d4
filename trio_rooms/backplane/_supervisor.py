"""The reconnect supervisor: keeps one connection per role, and says when the node is degraded.

Each role (membership, subscriber, presence, publisher) has its own connection. When
Redis drops one of them while the others stay up (Redis closing a slow subscriber's connection,
``CLIENT KILL``), only that one is made again, at once. When a connection cannot be
made, Redis itself is unreachable: every connection is closed, and all of them are made
again together, with exponential backoff and jitter.

`Health` (which connections are up, what is logged) and `Backoff` (how long to wait)
do no I/O; `Supervisor.run` drives them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import ClassVar, Final, NoReturn, Protocol, final

import trio
from coredis.connection import BaseConnection

from ._connection import FAULTS, ConnectionEndedError, first_leaf, open_connection

__all__ = ["Backoff", "Health", "Role", "Supervisor"]

_logger = logging.getLogger("trio_rooms")

#: The first reconnect delay; it doubles up to ``max_backoff``.
FIRST_BACKOFF: Final = 0.05


class Role(Protocol):
    """What one connection is for."""

    #: Names the connection in logs ("the subscribed connection").
    name: ClassVar[str]

    async def run(self, connection: BaseConnection, *, task_status: trio.TaskStatus[None]) -> None:
        """Bring Redis up to date on ``connection``, call ``started()``, then serve.

        Returns only by raising one of `FAULTS` once the connection is lost.
        """
        ...

    def lost(self) -> None:
        """The connection is gone: drop, or keep for the next one, what it carried."""
        ...


@final
class Health:
    """Which roles' connections are up; degraded while one is lost, logged once per outage.

    Args:
        where: Redis's address for logs, without credentials.
        names: Every role's name.
        changed: Called whenever ``degraded`` or ``reconnects`` may have changed.
    """

    def __init__(self, where: str, names: Sequence[str], *, changed: Callable[[], None]) -> None:
        self._where = where
        self._statistics_changed = changed
        self._names = frozenset(names)
        self._up: set[str] = set()
        self._connected_before = False
        self._outage_started = 0.0
        self._up_since: float | None = None  # while every connection is up
        self._uptime = 0.0
        self.degraded = False
        self.reconnects = 0

    def up(self, name: str) -> None:
        """``name``'s connection is made and ready."""
        self._up.add(name)
        if not self._up >= self._names:
            return
        self._up_since = trio.current_time()
        if self._connected_before:
            self.reconnects += 1
        self._connected_before = True
        if self.degraded:
            self.degraded = False
            _logger.info(
                "backplane: Redis at %s is back after %.1f s",
                self._where,
                trio.current_time() - self._outage_started,
            )
        self._statistics_changed()

    def lost(self, name: str, fault: BaseException) -> None:
        """``name``'s connection is lost (or could not be made) because of ``fault``."""
        self._up.discard(name)
        if self._up_since is not None:
            self._uptime = trio.current_time() - self._up_since
            self._up_since = None
        if not self.degraded:
            self.degraded = True
            self._statistics_changed()
            self._outage_started = trio.current_time()
            _logger.warning(
                "backplane: lost the %s connection to Redis at %s (%s); broadcasts may reach "
                "this node's sessions only until it is back",
                name,
                self._where,
                _describe(fault),
            )

    def take_uptime(self) -> float:
        """Seconds every connection was up before the last loss; 0 until they are again."""
        uptime, self._uptime = self._uptime, 0.0
        return uptime


@final
class Backoff:
    """Delays between attempts to connect: doubling from `FIRST_BACKOFF`, with jitter.

    Args:
        maximum: The longest delay.
        uniform: Draws the jitter (``random.uniform``; a seeded one in tests).
    """

    def __init__(
        self, maximum: float, *, uniform: Callable[[float, float], float] = random.uniform
    ) -> None:
        self._maximum = maximum
        self._uniform = uniform
        self._failures = 0

    def next(self) -> float:
        """The delay before the next attempt: between half of it and all of it."""
        delay = min(self._maximum, FIRST_BACKOFF * 2**self._failures)
        self._failures += 1
        return self._uniform(delay / 2, delay)

    def reset(self) -> None:
        """The connection was up for a while: the next outage starts from the first delay."""
        self._failures = 0


@final
class Supervisor:
    """Runs the roles, each on a connection of its own, and makes lost ones again.

    Args:
        url: Where Redis is.
        roles: Connected in this order; a role starts once the one before it started.
        health: Told of every connection made and lost.
        timeout: Bounds making a connection.
        max_backoff: The longest wait between two attempts to reconnect.
    """

    def __init__(
        self,
        url: str,
        roles: Sequence[Role],
        health: Health,
        *,
        timeout: float,
        max_backoff: float,
    ) -> None:
        self._url = url
        self._roles = roles
        self._health = health
        self._timeout = timeout
        self._max_backoff = max_backoff

    async def run(self) -> NoReturn:
        """Connect every role, keep them connected, until cancelled (never raises a fault)."""
        backoff = Backoff(self._max_backoff)
        while True:
            fault = await self._serve_once()
            for role in self._roles:
                self._lose(role, fault)
            if self._health.take_uptime() >= self._max_backoff:
                backoff.reset()  # it was up for a while: this is a new outage
            await trio.sleep(backoff.next())

    async def _serve_once(self) -> BaseException:
        """Connect every role and keep them until a connection cannot be made; return why."""
        fault: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                for role in self._roles:
                    await nursery.start(self._keep, role)
        except* FAULTS as group:
            fault = first_leaf(group)
        assert fault is not None, "_keep returns only by raising"
        return fault

    async def _keep(self, role: Role, *, task_status: trio.TaskStatus[None]) -> NoReturn:
        """Keep ``role`` connected: a connection lost alone is made again at once.

        ``started()`` comes once the role's first connection is ready. Raises a fault
        when a connection cannot be made.
        """
        while True:
            fault = await self._hold(role, task_status)
            task_status = trio.TASK_STATUS_IGNORED
            self._lose(role, fault)

    async def _hold(self, role: Role, task_status: trio.TaskStatus[None]) -> BaseException:
        """Connect ``role`` and serve it until the connection is lost; return why.

        Raises a fault when the connection cannot be made, or the role not started on it.
        """
        fault: BaseException | None = None
        started = False
        try:
            async with (
                open_connection(self._url, timeout=self._timeout) as connection,
                trio.open_nursery() as nursery,
            ):
                await nursery.start(role.run, connection)
                started = True
                self._health.up(role.name)
                task_status.started()
        except* FAULTS as group:
            if not started:
                raise
            fault = first_leaf(group)
        assert fault is not None, "a role's run returns only by raising"
        return fault

    def _lose(self, role: Role, fault: BaseException) -> None:
        role.lost()
        self._health.lost(role.name, fault)


def _describe(fault: BaseException) -> str:
    if isinstance(fault, trio.TooSlowError):
        return "no reply in time"
    if isinstance(fault, ConnectionEndedError):
        return str(fault)
    text = str(fault)
    return f"{type(fault).__name__}: {text}" if text else type(fault).__name__
