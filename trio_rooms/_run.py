"""``run`` and ``open_signal_scope``: Ctrl+C and SIGTERM as a graceful shutdown.

Without them a SIGINT raises ``KeyboardInterrupt`` at whatever checkpoint trio is at,
inside a handler or trio's own machinery: sessions are cut off (1006) instead of being
sent 1001. Here the signal cancels a scope instead, which every ``open_rooms`` inside
it turns into a graceful shutdown, as trio recommends (``trio.open_signal_receiver``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import NoReturn, TypeVar, TypeVarTuple

import trio

__all__ = ["open_signal_scope", "run"]

_logger = logging.getLogger("trio_rooms")

#: What stops a server: Ctrl+C in a terminal, and what service managers send.
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

RetT = TypeVar("RetT")
PosArgsT = TypeVarTuple("PosArgsT")


def run(async_fn: Callable[[*PosArgsT], Awaitable[RetT]], *args: *PosArgsT) -> RetT | None:
    """Run ``async_fn(*args)`` like `trio.run`, and stop it gracefully on SIGINT or SIGTERM.

    ::

        async def main() -> None:
            async with trio_rooms.open_rooms(ChatRoom) as rooms, trio.open_nursery() as nursery:
                await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 8000)

        trio_rooms.run(main)

    ``async_fn`` runs inside `open_signal_scope`: the first Ctrl+C (SIGINT) or SIGTERM
    cancels it, so every `open_rooms` block in it shuts down gracefully (each session
    is sent 1001 and its ``on_close`` runs, then each room's ``on_stop``, then the
    storage is flushed and closed), and `run` returns None; a script that ends there
    exits with status 0. A second signal during that shutdown ends the process at once
    (see `open_signal_scope`).

    Returns:
        What ``async_fn`` returned; None if a signal stopped it.

    Raises:
        Exception: whatever ``async_fn`` raised, as `trio.run` raises it.
    """
    return trio.run(_until_signalled, async_fn, *args)


async def _until_signalled(
    async_fn: Callable[[*PosArgsT], Awaitable[RetT]], *args: *PosArgsT
) -> RetT | None:
    async with open_signal_scope():
        return await async_fn(*args)
    return None  # cancelled by a signal


@asynccontextmanager
async def open_signal_scope() -> AsyncGenerator[trio.CancelScope]:
    """A cancel scope around the block that SIGINT (Ctrl+C) and SIGTERM cancel.

    For programs that call `trio.run` themselves (`run` is this around a function)::

        async def main() -> None:
            async with trio_rooms.open_signal_scope():
                async with trio_rooms.open_rooms(ChatRoom) as rooms, trio.open_nursery() as n:
                    await n.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 8000)

    The first signal cancels the block, which then leaves normally: an `open_rooms`
    inside shuts down gracefully, with the shields it needs. ``cancelled_caught`` on
    the yielded scope then tells that a signal (or your own ``cancel()``) stopped it.

    A second signal while the block is still shutting down ends the process at once:
    the signal is raised again with its default action (no Python cleanup runs, the
    storage is not flushed; a shell reports status 130 for SIGINT, 143 for SIGTERM;
    `subprocess` a return code of ``-signal``). A signal that was ignored when the
    block was entered (``SIG_IGN``, as for a background job's SIGINT) stays ignored.
    The handlers in place before are restored when the block is left. An exception
    from the block propagates as it was raised.

    Raises:
        RuntimeError: entered outside the main thread (Python delivers signals there only).
    """
    watched = [signum for signum in _SIGNALS if signal.getsignal(signum) != signal.SIG_IGN]
    scope = trio.CancelScope()
    if not watched:
        with scope:
            yield scope
        return
    # Shielded: the watcher listens until the block is left, also while a scope
    # around it is cancelled, and so never adds an exception of its own.
    watching = trio.CancelScope(shield=True)
    with trio.open_signal_receiver(*watched) as received:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch, received, scope, watching)
                try:
                    with scope:
                        yield scope
                finally:
                    watching.cancel()
        except BaseExceptionGroup as group:
            # The watcher never raises: the group holds the block's one exception.
            _reraise(group.exceptions[0])


async def _watch(
    received: AsyncIterator[int], scope: trio.CancelScope, watching: trio.CancelScope
) -> None:
    with watching:
        first = True
        async for signum in received:
            name = signal.Signals(signum).name
            if not first:
                _exit_at_once(name, signum)
            first = False
            _logger.info("%s received: shutting down (a second one exits at once)", name)
            scope.cancel()


def _exit_at_once(name: str, signum: int) -> NoReturn:
    _logger.warning("%s received again during shutdown: exiting at once", name)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed or detached: nothing to flush
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    os._exit(128 + signum)  # only if the default action did not end the process


def _reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` as it was: not chained to the group it was taken out of."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context
