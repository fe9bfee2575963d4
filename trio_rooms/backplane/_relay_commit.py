"""`RelayedCommits`: an owner's commits carry its relayed sessions' frames to their nodes.

Without it, a relayed session's reply waits for the room's commit (the output gate: it
is logged, and no client may see what a crash would lose), then goes in an XADD of its
own: two round trips to Redis. Here the commit's script adds the reply's stream entry
itself, last, once every write of the commit is done and its fence allowed it: one
round trip, and a deposed owner's frames still never reach a stream.

The commit is written on the relay link's own connection, in its place among the
link's entries, so that each relay's entries reach its stream in the order of their
seqs (`RelayLink.collect`). A commit whose connection is lost under it is written again
through the storage, without its entries (a second run would add them twice): its
relays broke with the connection, and their sessions' moves replay what their clients
missed from the log; so is one Redis refused with NOSCRIPT (a SCRIPT FLUSH), and the link
connects again, loading the script. A commit with no relayed frame to carry goes through
the storage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import final

from .._core.memory import check_commit
from .._core.storage import Commit
from .._errors import BackplaneError
from .._resp import RespError
from ..storage._redis_commit import COMMIT_SOURCE, commit_command, commit_result
from ..storage._redis_keys import RedisKeys
from ..storage.redis import RedisStorage
from ._relay_link import RelayLink

__all__ = ["RelayedCommits"]


@final
class RelayedCommits:
    """The `CommitRoute` of a cluster whose storage is a `RedisStorage` on its Redis."""

    def __init__(self, link: RelayLink, storage: RedisStorage) -> None:
        self._link = link
        self._storage = storage
        self._keys = RedisKeys(storage.prefix.encode())
        link.load_script(COMMIT_SOURCE)

    async def commit(self, commit: Commit, release: Callable[[], None]) -> Sequence[bool] | None:
        """Write ``commit`` with the relayed frames ``release`` lets go: see `CommitRoute`."""
        link = self._link
        if not link.connected:
            return None
        check_commit(commit)  # (before any relay's seq is counted for the frames)
        link.collect()
        try:
            release()
        finally:
            entries = link.collected()
        if not entries:
            return None
        command = commit_command(self._keys, commit, entries, link.max_stream)
        # No deadline of its own: the link reads its reply within its `timeout`, or
        # drops the connection, and the storage's commit is bounded by the storage's.
        try:
            reply = await link.commit(command)
        except BackplaneError:
            # The relays' connection was lost under it: it ran, or not. Its writes go
            # again through the storage, which lands the same state when applied twice;
            # its entries do not (they would be added twice): their relays broke with
            # the connection, and what a client had not been sent of them comes from
            # the replay log when its session moves.
            return await self._storage.commit(commit)
        if isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT"):
            # Redis forgot the script (SCRIPT FLUSH): the commit did not run. Its writes
            # go through the storage (which loads the script again), its entries with
            # the link's connections: their relays break, and the link connects again.
            link.drop("Redis forgot the commit script")
            return await self._storage.commit(commit)
        return commit_result(commit, reply)
