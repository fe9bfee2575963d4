"""``run_eagerly``: await a coroutine, learning whether it had to wait.

A session's handler reads its socket between messages, and must hand the reading to its
reader task as soon as a hook waits (on storage, on the gate, on anything), or the peer's
frames, pings and close would go unread meanwhile. trio has no way to ask whether an
await will suspend, so the handler steps the hook's coroutine itself: a first ``send``
runs it up to its first trap; if it has not returned by then, ``on_wait`` runs and the
coroutine is awaited on from that trap, exactly as ``await`` would (PEP 380).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Coroutine, Generator
from typing import Final, TypeVar

__all__ = ["DONE", "first_step", "resume", "run_eagerly"]

RetT = TypeVar("RetT")

#: What `first_step` returns for a coroutine that returned without waiting.
DONE: Final = object()


async def run_eagerly(work: Coroutine[object, object, RetT], on_wait: Callable[[], None]) -> RetT:
    """Await ``work``; call ``on_wait`` once, before it first suspends (never if it does not).

    Cancellation and every other exception reach ``work`` as they would through ``await``.
    """
    try:
        trap = work.send(None)
    except StopIteration as done:
        result: RetT = done.value
        return result
    on_wait()
    return await resume(work, trap)


def first_step(work: Coroutine[object, object, object]) -> object:
    """Run ``work`` up to its first trap: the trap, or `DONE` if it returned (its result
    is dropped); then ``await resume(work, trap)``, as `run_eagerly` does.

    For a caller that runs a coroutine per message: no coroutine of its own, and the
    StopIteration caught in this short frame, not in the caller's (whose frame would
    then be made an object, for as long as the caller lives).
    """
    try:
        return work.send(None)
    except StopIteration:
        return DONE


@types.coroutine
def resume(work: Coroutine[object, object, RetT], trap: object) -> Generator[object, object, RetT]:
    """Go on with ``work`` from the ``trap`` its first step yielded: ``yield from``'s loop."""
    while True:
        try:
            sent = yield trap
        except GeneratorExit:
            work.close()
            raise
        except BaseException as exc:  # Cancelled, KeyboardInterrupt...: the task's to see
            try:
                trap = work.throw(exc)
            except StopIteration as done:
                thrown: RetT = done.value
                return thrown
        else:
            try:
                trap = work.send(sent)
            except StopIteration as done:
                sent_back: RetT = done.value
                return sent_back
