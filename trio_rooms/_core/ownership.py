"""The ``Cluster`` port: which node owns a room, for the single-owner mode.

With a cluster, a room runs only on the node holding its lease: the registry acquires
it before the room starts (raising the room's fence in the storage to its token before
``on_start`` reads anything), every commit of the room carries that token
(`Commit.fence`), and the room stops at once when the lease ends. A client of another
node is served through the owner: that node hands its connection to `Cluster.relay`,
and the owner runs the session over a `Connection` the cluster gives `RelayHost`; a
route request is asked of the owner the same way (`Cluster.relay_request`). The
core only talks to these Protocols; ``trio_rooms.backplane`` has the Redis one.

When a relayed session's owner is lost, `Cluster.relay` returns `OwnerLost` with the
client's connection intact, and the registry moves the session to the next owner
(`MovableConnection`) within `Cluster.move_timeout`: the client does not reconnect.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, final

import attrs
import trio

from ..codec import WireFormat
from .config import RoomsConfig
from .connection import Connection
from .request import ConnectRequest
from .routes import HttpRequest, Response
from .storage import Storage

__all__ = ["Cluster", "OwnedRoom", "OwnerLost", "RelayHost"]


@final
@attrs.frozen
class OwnerLost:
    """A relay ended with its owner lost and the client's connection left open.

    Every frame the owner's session sent that reached this node was written to the
    client; nothing was closed. ``unsent`` are the client's messages read from it that
    the owner never got, in order.
    """

    why: str
    unsent: tuple[str | bytes, ...] = ()


class OwnedRoom(Protocol):
    """This node's lease on one room."""

    @property
    def token(self) -> int:
        """The fencing token: larger than every earlier owner's."""
        ...

    @property
    def ended(self) -> trio.Event:
        """Set once the lease is not this node's any more (released, lapsed, taken)."""
        ...

    async def release(self) -> None:
        """Give the lease back now, so that another node may take the room at once."""
        ...


class AdmittedRelay(Protocol):
    """A relayed session admitted to a room of this node (`RelayHost.admit_relayed`)."""

    def run(self) -> Awaitable[object]:
        """The session's run, to await in the caller's own task, as a local session's
        transport does: no coroutine between them that every wake-up of the session
        would resume."""
        ...

    def ended_with(self) -> tuple[int, str]:
        """The code and reason the session ended with (once `run` returned)."""
        ...


class RelayHost(Protocol):
    """What a cluster serves the sessions relayed to this node with: its registry."""

    @property
    def config(self) -> RoomsConfig: ...

    @property
    def storage(self) -> Storage:
        """Where the rooms keep their state: the cluster's leases must fence it."""
        ...

    async def admit_relayed(
        self, name: str, request: ConnectRequest, wire: WireFormat, connection: Connection
    ) -> AdmittedRelay | tuple[int, str] | None:
        """Admit the session another node relays here, for the caller to run: or its
        close, if it ended in its admission.

        Returns None, without touching ``connection``, if the room is not this node's.
        """
        ...

    async def answer_relayed(self, request: HttpRequest) -> Response | None:
        """Answer the route request another node relays here; None if the room is not ours."""
        ...


class Cluster(Protocol):
    """Decides which node owns each room name; one per `open_rooms` block."""

    @property
    def move_timeout(self) -> float:
        """Seconds a session whose owner was lost waits for the next (or for the owner to
        come back), before its client is closed with 1012 to resume by itself."""
        ...

    async def run(
        self, host: RelayHost, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the leases and relays alive until cancelled; started once it can acquire.

        The sessions other nodes relay here run on ``host``.
        """
        ...

    async def relay(
        self,
        room: str,
        request: ConnectRequest,
        wire: WireFormat,
        connection: Connection,
        config: RoomsConfig,
    ) -> tuple[int, str] | OwnerLost | None:
        """Serve ``connection``'s session through ``room``'s owner until it ends: its close.

        Returns None, having read and written nothing on ``connection``, when no other
        node that answers owns the room (the caller tries to take it, or asks again);
        `OwnerLost`, having closed nothing, when the owner was lost while it served.
        """
        ...

    async def relay_request(
        self, request: HttpRequest, config: RoomsConfig
    ) -> Response | OwnerLost | None:
        """The answer of ``request.room``'s owner to the route request ``request``.

        Returns None when no other node that answers owns the room (as `relay`);
        `OwnerLost` when the owner was lost before it answered: the request may or may
        not have run there.
        """
        ...

    async def acquire(self, room: str) -> OwnedRoom | None:
        """Take ``room``'s lease; None if another node holds it.

        Raises:
            BackplaneError: the coordinator could not be reached in time.
        """
        ...
