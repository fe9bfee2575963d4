"""What the relay link's writer is answered: XADDs' replies in bulk, a commit's at once.

Redis answers every XADD the writer writes. Read as each came, those replies would cost
a wake-up of a task per XADD, more than the XADD's own share of a relayed message, so
`confirm` reads them every so often: every ``1.5 * timeout`` while some are due (or once
`OWED` are), those written before, which have come by then (one read, the rest
buffered). An error among them is the link's loss. A commit written among them
(`RelayLink.commit`) is answered at once, as its room's sessions wait for it: `confirm`
then reads up to its reply and hands it to its `CommitReply`.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NoReturn, final

import trio

from .._resp import Reply, RespConnection, RespError

__all__ = ["OWED", "CommitReply", "Unconfirmed", "confirm"]

#: XADDs unanswered that make `confirm` read their replies at once: their bytes stay
#: few in the socket's buffer.
OWED: Final = 1024


@final
class _Parked:
    """One task parked until `wake`: an `Event` without one made per wait (per commit)."""

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None

    async def park(self) -> None:
        self._task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def wake(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def _abort(self, _: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        self._task = None
        return trio.lowlevel.Abort.SUCCEEDED


@final
class CommitReply:
    """The reply to one `RelayLink.commit`, once it came (or the connection was lost)."""

    __slots__ = ("_done", "_parked", "lost", "reply")

    def __init__(self) -> None:
        self._done = False
        self._parked = _Parked()
        self.reply: Reply = None
        #: Why the connection was lost before the reply came (None: it came).
        self.lost: str | None = None

    async def wait(self) -> None:
        """Wait until it is answered or failed (at once if it is)."""
        if self._done:
            await trio.lowlevel.checkpoint()
        else:
            await self._parked.park()

    def answer(self, reply: Reply) -> None:
        self.reply = reply
        self._done = True
        self._parked.wake()

    def fail(self, why: str) -> None:
        self.lost = why
        self._done = True
        self._parked.wake()


@final
class Unconfirmed:
    """The writer's commands written, how many of their replies were read, and the
    commits among them still waiting for theirs.

    Args:
        commits: Where the commits written wait, each with the number of its reply
            (the link's, which fails them when the connection is lost).
    """

    __slots__ = ("_many", "_written", "answered", "commits", "written")

    def __init__(self, commits: deque[tuple[int, CommitReply]] | None = None) -> None:
        self.written = 0
        self.answered = 0
        #: The one task that waits (`confirm`), in `wait` or in `wait_many`.
        self._written = _Parked()
        self._many = _Parked()
        self.commits = deque[tuple[int, CommitReply]]() if commits is None else commits

    def add(self, count: int) -> None:
        """``count`` more XADDs written."""
        self.written += count
        if count:
            self._written.wake()
            if self.commits or self.written - self.answered >= OWED:
                self._many.wake()

    def add_commit(self, reply: CommitReply) -> None:
        """A commit written, answered to ``reply``."""
        self.commits.append((self.written, reply))
        self.add(1)

    async def wait(self) -> None:
        """Wait until a reply is due."""
        while self.written == self.answered:
            await self._written.park()

    async def wait_many(self) -> None:
        """Wait until `OWED` replies are due, or a commit's."""
        while self.written - self.answered < OWED and not self.commits:
            await self._many.park()


async def confirm(connection: RespConnection, unconfirmed: Unconfirmed, timeout: float) -> NoReturn:
    """Read the replies to what was written on ``connection``, each within a bound of
    its write (see the module's docstring): ``timeout`` for a commit's, half of it for
    an XADD's (what Redis runs at once).

    Raises:
        RespError: an XADD was refused.
        trio.TooSlowError: a reply did not come in time.
    """
    period = 1.5 * timeout
    commits = unconfirmed.commits
    while True:
        await unconfirmed.wait()
        owed = unconfirmed.written
        if not commits:
            # Scopes, not `move_on_after` (a generator context manager more per commit).
            with trio.CancelScope(deadline=trio.current_time() + period):
                await unconfirmed.wait_many()  # (or a commit's, written meanwhile)
            if commits:
                owed = unconfirmed.written  # read as it comes: sessions wait for it
        bound = timeout if commits else 0.5 * timeout
        with trio.CancelScope(deadline=trio.current_time() + bound):
            while unconfirmed.answered < owed:
                reply = await connection.reply()
                number = unconfirmed.answered
                unconfirmed.answered += 1
                if commits and commits[0][0] == number:
                    commits.popleft()[1].answer(reply)
                elif isinstance(reply, RespError):
                    raise reply
            continue
        raise trio.TooSlowError("Redis did not answer an XADD in time")
