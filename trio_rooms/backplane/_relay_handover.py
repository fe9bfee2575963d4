"""A relayed session's inbound across the loss of its relay, while its owner lives.

The client's node keeps the messages a relay sent until the owner's CREDIT says its
session took them (`Unconfirmed`: at most the credit window, ``inbound_max_messages``).
When the relay is lost and the session moves back to the same owner, its OPEN names
the lost relay. The owner ends that relay's session first, if it still runs, and waits
for it to end (`ServedRelays.supersede`): once broken a relay takes nothing more (what
it held untaken is dropped), and its session, ended by its peer, handles all it took
before it goes. The new relay's ACCEPTED says how many that was, and the client's node
sends the rest first, then what it read since: each message is handled once, in order.
An owner that does not know the relay (another node, a restarted one, or past its
keeping) says so, and the kept messages are dropped: the loss of an owner's death.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol, final

import trio

__all__ = ["ServedRelay", "ServedRelays", "Unconfirmed"]

_logger = logging.getLogger("trio_rooms")


@final
class Unconfirmed:
    """The messages relay ``relay`` to node ``owner`` sent, from the first one its owner
    has not confirmed taking, in order."""

    __slots__ = ("_messages", "_sent", "_seqs", "owner", "relay")

    def __init__(self, owner: str, relay: str) -> None:
        self.owner = owner
        self.relay = relay
        self._messages: deque[str | bytes] = deque()
        #: The seq of each message's entry on the relay.
        self._seqs: deque[int] = deque()
        self._sent = 0

    def __len__(self) -> int:
        return len(self._messages)

    def sent(self, message: str | bytes, seq: int) -> None:
        """``message`` was handed to the link, as the relay's entry ``seq``."""
        self._messages.append(message)
        self._seqs.append(seq)
        self._sent += 1

    def confirm(self, taken: int) -> None:
        """The owner's session took the first ``taken`` messages: forget those."""
        messages, seqs = self._messages, self._seqs
        while messages and self._sent - len(messages) < taken:
            messages.popleft()
            seqs.popleft()

    def unread_from(self, seq: int) -> list[str | bytes]:
        """The messages of the entries from ``seq`` on, which the owner's node read
        without a session for them (its GONE said so): none took them, so they are the
        next owner's to handle, whoever that is. Forgotten here, and returned in order.
        """
        messages, seqs = self._messages, self._seqs
        unread: list[str | bytes] = []
        while seqs and seqs[-1] >= seq:
            seqs.pop()
            unread.append(messages.pop())
        self._sent -= len(unread)
        unread.reverse()
        return unread

    def after(self, taken: int) -> list[str | bytes]:
        """The messages after the first ``taken``: those the owner's session never took.

        Raises:
            ValueError: ``taken`` is more than were sent, or fewer than were confirmed.
        """
        confirmed = self._sent - len(self._messages)
        if not confirmed <= taken <= self._sent:
            raise ValueError(
                f"the owner took {taken} of relay {self.relay}'s messages; "
                f"{confirmed} to {self._sent} were possible"
            )
        self.confirm(taken)
        return list(self._messages)

    def drop(self, why: str) -> None:
        """The next owner cannot say what it took: the messages kept are lost."""
        if self._messages:
            _logger.warning(
                "relays: %d message(s) sent on relay %s may be lost: %s",
                len(self._messages),
                self.relay,
                why,
            )
            self._messages.clear()
            self._seqs.clear()


class ServedRelay(Protocol):
    """The owner's side of a relayed session, as `ServedRelays` sees it."""

    @property
    def taken(self) -> int:
        """The client's messages its session has taken so far."""
        ...

    def supersede(self) -> None:
        """Break the relay: a newer one serves its client now."""
        ...


@final
class _Served:
    __slots__ = ("done", "relay", "until")

    def __init__(self, relay: ServedRelay) -> None:
        self.relay = relay
        self.done = trio.Event()
        self.until = float("inf")


@final
class ServedRelays:
    """The relayed sessions this node serves, by (client's node, relay id); each kept for
    a while after it ended, for the relay that may resume it to learn what it took."""

    def __init__(self) -> None:
        self._relays: dict[tuple[str, str], _Served] = {}

    def add(self, source: str, relay: str, served: ServedRelay) -> None:
        """Relay ``relay`` of node ``source`` serves a session here from now on."""
        now = trio.current_time()
        for key, found in list(self._relays.items()):
            if found.until <= now:
                del self._relays[key]
        self._relays[source, relay] = _Served(served)

    def ended(self, source: str, relay: str, keep: float) -> None:
        """The relay's session ended: remember what it took for ``keep`` seconds."""
        found = self._relays.get((source, relay))
        if found is not None:
            found.until = trio.current_time() + keep
            found.done.set()

    async def supersede(self, source: str, relay: str, timeout: float) -> int | None:
        """End the session of relay ``relay`` of node ``source``, if it still runs; the
        messages it took (None if it is not known here).

        Waits up to ``timeout`` for the session to handle what it took and end, so that
        the session resumed after it sees its messages and frames after them all.
        """
        found = self._relays.get((source, relay))
        if found is None:
            await trio.lowlevel.checkpoint()
            return None
        found.relay.supersede()
        with trio.move_on_after(timeout):
            await found.done.wait()
        return found.relay.taken
