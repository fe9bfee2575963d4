"""Route requests of a room another node owns: asked of the owner over the relay streams.

The node that received the request has read its body within its bounds (``413``,
``408``) and checked its origin and caps; it sends the request to the owner (REQUEST)
on a relay of its own and waits for the answer (RESPONSE), or MOVED if the room is not
the owner's any more (the caller asks again). The owner answers it as one of its own
(`RelayHost.answer_relayed`): the same route, statuses and bodies, once the writes it
made are durable. A relay that breaks (the owner silent for ``lease_ttl``, Redis lost)
is answered 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, final

import trio

from .._core.outbound import Frame
from .._core.ownership import OwnerLost, RelayHost
from .._core.routes import HttpRequest, Response
from ._relay_end import RelayEnd
from ._relay_entries import (
    GONE,
    MOVED,
    REQUEST,
    RESPONSE,
    Entry,
    VersionError,
    request_body,
    requested,
    responded,
    response_body,
)
from ._relay_link import RelayLink

__all__ = ["OTHER_VERSION_RESPONSE", "answer_relayed", "request_through"]

_logger = logging.getLogger("trio_rooms")

#: The answer to a route request between nodes of two versions of the relay protocol:
#: 503, to be asked again (of a node of the owner's version, or once it is drained).
OTHER_VERSION_RESPONSE: Final = Response(
    503,
    (("content-type", "text/plain; charset=utf-8"), ("retry-after", "1")),
    b"the room's node runs another version of trio_rooms",
)


@final
class _Answer:
    """The asking side of one relayed request: an `Endpoint` that waits for the answer."""

    def __init__(self) -> None:
        #: The owner's response; None for MOVED; `OwnerLost` if the relay broke.
        self.response: Response | OwnerLost | None = None
        self.done = trio.Event()

    def deliver(self, entry: Entry) -> None:
        if entry.kind == RESPONSE:
            try:
                self.response = responded(entry.body)
            except ValueError as exc:
                self.broken(f"the room's node sent a bad RESPONSE: {exc}")
        elif entry.kind == GONE:
            self.broken("the room's node dropped the request")
        elif entry.kind != MOVED:
            return
        self.done.set()

    def frames(self, frames: list[Frame]) -> None:
        self.broken("the room's node sent frames for a route request")

    def broken(self, why: str) -> None:
        if not self.done.is_set():
            _logger.warning("relays: a route request was lost: %s", why)
            self.response = OwnerLost(why)
            self.done.set()


@final
class _Asked:
    """The answering side of one relayed request: nothing more comes on it but its end.

    If the asking node is lost, the handler runs on, as a local one whose client left.
    """

    def deliver(self, entry: Entry) -> None:
        pass

    def frames(self, frames: list[Frame]) -> None:
        pass

    def broken(self, why: str) -> None:
        pass


async def request_through(
    link: RelayLink, owner: str, request: HttpRequest
) -> Response | OwnerLost | None:
    """Node ``owner``'s answer to ``request``; None if the room is not its own (MOVED);
    `OwnerLost` if it was lost before it answered (the request may have run there)."""
    end = link.new_end(owner)
    answer = _Answer()
    link.add(end, answer)
    try:
        link.send_nowait(end, REQUEST, *request_body(request))
        await answer.done.wait()
    finally:
        link.remove(end)
    return answer.response


async def answer_relayed(
    link: RelayLink, host: RelayHost, entry: Entry, holds: Callable[[str], bool]
) -> None:
    """Answer the route request a REQUEST carries on ``host``; MOVED if it is not ours."""
    end = RelayEnd(entry.source, entry.relay, received=entry.seq)
    try:
        request = requested(entry.body)
    except VersionError as exc:
        # Answered, not dropped: a node of any version passes a RESPONSE on as it is.
        _logger.warning("relays: refused a REQUEST from node %r: %s", entry.source, exc)
        link.send_nowait(end, RESPONSE, *response_body(OTHER_VERSION_RESPONSE))
        return
    except ValueError as exc:
        _logger.warning("relays: refused a REQUEST from node %r: %s", entry.source, exc)
        link.send_nowait(end, GONE)
        return
    # Known to the link while it runs: this node beats the asking one, which would
    # otherwise take a handler slower than ``lease_ttl`` for a lost owner.
    link.add(end, _Asked())
    try:
        response = await host.answer_relayed(request)
    finally:
        link.remove(end)
    if response is None:
        link.send_nowait(end, MOVED)
    elif holds(request.room):
        link.send_nowait(end, RESPONSE, *response_body(response))
    # Else the room was lost meanwhile: nothing a deposed owner says reaches a client;
    # the asking node's relay breaks when this node's beats stop (or it gets GONE).
