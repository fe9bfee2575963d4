"""``Supervisor``: keeps a client connected, reconnecting with backoff, until it ends."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Generic, TypeVar, final

import trio

from .._errors import ConnectionClosedError
from .._message import Message
from ._connection import Connection, ConnectionSettings
from ._errors import ConnectError
from ._events import Reconnected
from ._policy import ReconnectPolicy
from ._state import ClientState

__all__ = ["Supervisor"]

ServerMsgT = TypeVar("ServerMsgT", bound=Message)


@final
class Supervisor(Generic[ServerMsgT]):
    """Runs one :class:`Connection` after another over ``state``, as ``policy`` allows."""

    def __init__(
        self,
        state: ClientState[ServerMsgT],
        settings: ConnectionSettings[ServerMsgT],
        policy: ReconnectPolicy,
        rng: random.Random,
    ) -> None:
        self._state = state
        self._settings = settings
        self._policy = policy
        self._rng = rng
        self._cancel_scope = trio.CancelScope()

    def cancel(self) -> None:
        """End the current connection and every reconnect at once."""
        self._cancel_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, then keep the client connected until closed; for ``nursery.start``.

        The first connection is not retried: its failure raises from ``start``. A later
        failure ends the client and is kept in ``state.outcome``; ``state.done`` is set
        once this returns.
        """
        state = self._state
        started = False

        def on_started() -> None:
            nonlocal started
            started = True
            task_status.started()

        try:
            with self._cancel_scope:
                await self._keep_connected(on_started)
        except Exception as exc:
            if not started:
                raise
            state.outcome = exc
        finally:
            state.set_disconnected()
            state.requests.end(state.outcome or trio.ClosedResourceError("the client is closed"))
            state.inbox_send.close()
            state.events_send.close()
            state.done.set()

    async def _connection(self, started: Callable[[], None]) -> tuple[int, str]:
        return await Connection(self._state, self._settings).run(started)

    async def _keep_connected(self, on_started: Callable[[], None]) -> None:
        code, reason = await self._connection(on_started)
        while not self._state.closing:
            if not self._policy.retries(code):
                raise ConnectionClosedError(code, reason)
            previous = self._session_id()
            attempts, last_error = 0, None
            for delay in self._policy.delays(self._rng):
                attempts += 1
                await trio.sleep(delay)

                try:
                    code, reason = await self._connection(
                        functools.partial(self._report, code, reason, attempts, previous)
                    )
                except ConnectError as exc:
                    last_error = exc
                    continue
                break
            else:
                message = f"gave up reconnecting after {attempts} attempts"
                raise ConnectionClosedError(code, message) from last_error

    def _session_id(self) -> str | None:
        session = self._state.session
        return session.id if session is not None else None

    def _report(self, code: int, reason: str, attempts: int, previous: str | None) -> None:
        session = self._state.session
        self._state.events_send.send_nowait(
            Reconnected(
                code=code,
                reason=reason,
                attempts=attempts,
                resumed=session is not None and session.resumed,
                session_id=self._session_id(),
                previous_session_id=previous,
                replayed=session.replayed if session is not None and session.resumed else None,
            )
        )
