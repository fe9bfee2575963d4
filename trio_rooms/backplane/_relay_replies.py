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
class CommitReply:
    """The reply to one `RelayLink.commit`, once it came (or the connection was lost)."""

    __slots__ = ("done", "lost", "reply")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: Reply = None
        #: Why the connection was lost before the reply came (None: it came).
        self.lost: str | None = None

    def answer(self, reply: Reply) -> None:
        self.reply = reply
        self.done.set()

    def fail(self, why: str) -> None:
        self.lost = why
        self.done.set()


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
        self._written = trio.Event()
        self._many = trio.Event()
        self.commits = deque[tuple[int, CommitReply]]() if commits is None else commits

    def add(self, count: int) -> None:
        """``count`` more XADDs written."""
        self.written += count
        if count:
            self._written.set()
            if self.commits or self.written - self.answered >= OWED:
                self._many.set()

    def add_commit(self, reply: CommitReply) -> None:
        """A commit written, answered to ``reply``."""
        self.commits.append((self.written, reply))
        self.add(1)

    async def wait(self) -> None:
        """Wait until a reply is due."""
        while self.written == self.answered:
            await self._written.wait()
            self._written = trio.Event()

    async def wait_many(self) -> None:
        """Wait until `OWED` replies are due, or a commit's."""
        while self.written - self.answered < OWED and not self.commits:
            await self._many.wait()
            self._many = trio.Event()


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
