"""`RedisCluster`: the single-owner mode on Redis.

A room runs only on the node holding its lease (`Leases`); the room's writes carry the
lease's fencing token, which `RedisStorage` checks against the room's fence. A client
of another node is relayed to the owner through Redis streams (`RelayLink`: the
client's side in `_relay_pump`, the owner's in `_relayed`), and so is a route request
(`_relayed_routes`).

While Redis cannot be reached, an owner keeps the rooms no other node relays a session
to past their leases (`Leases`), and takes them back once Redis answers. A client's node
that lost its relays with Redis gives their owners ``lease_ttl`` to do so: it does not
take those rooms itself meanwhile, and moves the sessions back to their owner once it
has (`move_timeout`).

Nodes relay only to owners of their own relay protocol version (`PROTOCOL`, in each
node's record beside its leases): a client whose room's owner runs another version is
closed with 1012 (a route request answered 503), and the log says why, so that during a
rolling upgrade clients come back until the room moves to a node of their node's version.

While the owner lives, a relay's loss loses none of the client's messages and handles
none twice: the client's node keeps what the owner has not confirmed and, moving the
session back to it, sends what the lost relay's session did not take (`_relay_handover`).
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import weakref
from typing import Final, final

import trio

from .._core.commit_route import CommitRoute
from .._core.config import RoomsConfig
from .._core.connection import Connection, close_within
from .._core.ownership import OwnerLost, RelayHost
from .._core.request import ConnectRequest
from .._core.routes import HttpRequest, Response
from .._core.storage import Storage
from .._errors import BackplaneError
from .._redis import explained, redacted, same_redis
from .._resp import RESP_FAULTS, open_resp
from ..codec import WireFormat
from ..storage.redis import RedisStorage
from ._connection import FAULTS, client_name, first_leaf, open_connection, ping
from ._leases import Lease, Leases
from ._relay_commit import RelayedCommits
from ._relay_entries import OPEN, PROTOCOL, Entry
from ._relay_handover import ServedRelays, Unconfirmed
from ._relay_link import RelayLink
from ._relay_pump import relay_session
from ._relayed import OTHER_VERSION, serve_relayed
from ._relayed_routes import OTHER_VERSION_RESPONSE, answer_relayed, request_through

__all__ = ["RedisCluster"]

_logger = logging.getLogger("trio_rooms")

#: What a node's record says (`Leases.record_of`): the relay protocol it speaks.
_RECORD: Final = b"%d" % PROTOCOL


@final
class _Owned:
    """A `Lease` as the core sees it: its token, its end, and its release."""

    __slots__ = ("_lease", "_leases")

    def __init__(self, leases: Leases, lease: Lease) -> None:
        self._leases = leases
        self._lease = lease

    @property
    def token(self) -> int:
        return self._lease.token

    @property
    def ended(self) -> trio.Event:
        return self._lease.ended

    async def release(self) -> None:
        await self._leases.release(self._lease)


@final
class RedisCluster:
    """One live room per name across nodes, through leases and relays in Redis at ``url``.

    ::

        from trio_rooms.backplane.redis import RedisCluster
        from trio_rooms.storage.redis import RedisStorage

        cluster = RedisCluster("redis://localhost:6379/0")
        async with trio_rooms.open_rooms(
            GameRoom, storage=RedisStorage("redis://localhost:6379/0"), cluster=cluster
        ) as rooms:
            ...

    A room runs on the node holding its lease, taken when the room is first needed
    there and renewed every ``lease_ttl / 3``; a client of any other node is served
    through it. Use a `RedisStorage` on the same Redis and prefix: the room's fence
    is shared with it.

    Args:
        url: Redis's address, the storage's: ``redis://``, ``rediss://`` (TLS, with
            coredis's ``ssl_*`` parameters) or ``unix://``, with its user, password and
            database; the leases and the relays both connect with it.
        node_id: This node's id in its leases and relay stream (random by default),
            and in its connections' names: ``trio_rooms.leases.NODE`` and
            ``trio_rooms.relays.NODE`` in CLIENT LIST (the id %-quoted).
        prefix: Starts every key: the storage's prefix.
        lease_ttl: Seconds a lease outlives its owner's last renewal: how long a room
            of a node that died stays unavailable; also how long a node may stay silent
            before the relays it shares with others are broken. A relayed client whose
            relay was lost waits for its room's owner that long, and as long as the
            relays may take to connect again (``lease_ttl + 8 * timeout``), at most
            ``handshake_timeout`` in all (then 1012).
        timeout: Bound on each round trip to Redis.
        start_timeout: Bound on each step of the check at the start that Redis can be
            reached at all (each connection's connect and handshake, and a PING), which
            refuses the node (`BackplaneError`) when it runs out: longer than
            ``timeout``, since a slow answer from a loaded machine or a cold process is
            no wrong address, and afterwards a slow reply only costs a reconnection.
        max_relay_stream: Entries each node's relay stream keeps (``MAXLEN ~``), each
            what one node wrote it in one turn (up to 512 KiB unless a single entry is
            larger); a relay whose entries were trimmed unread is broken.
        max_relay_queue: Relay entries (and frames grouped into entries) waiting to be
            written to Redis; beyond it sessions wait to send.
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        prefix: str = "trio_rooms:",
        lease_ttl: float = 5.0,
        timeout: float = 1.0,
        start_timeout: float = 10.0,
        max_relay_stream: int = 100_000,
        max_relay_queue: int = 10_000,
    ) -> None:
        if max_relay_stream < 1 or max_relay_queue < 1:
            raise ValueError("max_relay_stream and max_relay_queue must be at least 1")
        self._url = url
        self._timeout = timeout
        self._start_timeout = max(timeout, start_timeout)
        self._lease_ttl = lease_ttl
        self._prefix = prefix
        #: The sessions other nodes relay here, by room (`_keeps`).
        self._serving: collections.Counter[str] = collections.Counter()
        #: Rooms whose relays broke with Redis, and until when their owner may reclaim
        #: them before this node takes them (`trio.current_time`).
        self._reclaimable: dict[str, float] = {}
        #: The sessions relayed here, kept a while after they end (what they took).
        self._served = ServedRelays()
        #: By client connection (the registry's, the same across a client's moves): what
        #: its lost relay sent that its owner did not confirm, for the next relay there.
        self._lost_relays: weakref.WeakKeyDictionary[Connection, Unconfirmed] = (
            weakref.WeakKeyDictionary()
        )
        self._leases = Leases(
            url,
            node_id=node_id,
            prefix=prefix,
            ttl=lease_ttl,
            timeout=timeout,
            keeps=self._keeps,
            record=_RECORD,
        )
        #: The nodes of another version found so far, and what their records said.
        self._other_versions: dict[str, bytes | None] = {}
        #: The nodes found to speak this node's version, until when that is trusted.
        self._same_version: dict[str, float] = {}
        self._relays = RelayLink(
            url,
            self._leases.node_id,
            prefix=prefix,
            timeout=timeout,
            dead_after=lease_ttl,
            max_stream=max_relay_stream,
            max_queue=max_relay_queue,
        )
        self._route: RelayedCommits | None = None

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self._leases.node_id

    async def run(
        self, host: RelayHost, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep this node's leases and relays alive until cancelled; started once connected.

        The sessions other nodes relay here run on ``host``.

        Raises:
            BackplaneError: Redis cannot be reached or refuses this node (a wrong
                password, database or certificate in ``url``), at the start: afterwards
                the leases and relays connect again until Redis answers.
        """
        storage = host.storage
        _check_fenced(storage, self._prefix)
        if isinstance(storage, RedisStorage) and same_redis(storage.url, self._url):
            # One Redis: a commit can add its relayed frames to their streams itself.
            self._route = RelayedCommits(self._relays, storage)
        await _check_reachable(self._url, self.node_id, self._start_timeout)
        async with trio.open_nursery() as nursery:
            self._relays.on_open = functools.partial(self._opened, nursery, host)
            await nursery.start(self._leases.run)
            await nursery.start(self._relays.run)
            task_status.started()

    @property
    def commit_route(self) -> CommitRoute | None:
        """How the rooms this node owns commit: with the frames they let go to other
        nodes (`RelayedCommits`), when the storage is a `RedisStorage` on this Redis."""
        return self._route

    def _keeps(self, room: str) -> bool:
        """Whether ``room`` may be kept past its lease: no relayed session is served in it.

        While the relays have no connection either, those they served wait to end.
        """
        return not self._relays.connected or not self._serving[room]

    @property
    def move_timeout(self) -> float:
        """Seconds a session whose owner was lost waits for the next (the registry caps
        it at ``handshake_timeout``).

        ``lease_ttl``, by when a dead owner's lease has lapsed, and the relay link's
        longest wait to connect again: a relay is lost with this node's own connection
        to Redis too (a dropped connection, a brief outage), and no owner can be reached
        until the link is back, after a backoff that is longer the more attempts failed.
        With ``lease_ttl`` alone, one refused attempt was enough to close the client
        with 1012 while its owner lived.
        """
        return self._lease_ttl + self._relays.reconnect_wait

    async def wait_renewed(self) -> None:
        """Wait until Redis has confirmed a renewal of this node's leases begun after the call.

        After Redis was lost, its leases have been reclaimed by then (or given up).
        """
        await self._leases.wait_renewed()

    def _opened(self, nursery: trio.Nursery, host: RelayHost, entry: Entry) -> None:
        if entry.kind == OPEN:
            # A lost relay's session is resumed within `move_timeout` of its loss, found
            # `lease_ttl` after at worst, and asked for within `handshake_timeout`.
            keep = self.move_timeout + self._lease_ttl + host.config.handshake_timeout
            nursery.start_soon(
                serve_relayed,
                self._relays,
                host,
                entry,
                self._leases.holds,
                self._serving,
                self._served,
                keep,
            )
        else:
            nursery.start_soon(answer_relayed, self._relays, host, entry, self._leases.holds)

    async def acquire(self, room: str) -> _Owned | None:
        """Take ``room``'s lease, or None if another node holds it.

        None too for a room whose relay broke with Redis here, for ``lease_ttl`` since:
        its owner may have kept it through the outage, and takes it back first.
        """
        until = self._reclaimable.get(room)
        if until is not None:
            if trio.current_time() < until:
                await trio.lowlevel.checkpoint()
                return None
            del self._reclaimable[room]
        lease = await self._leases.acquire(room)
        return None if lease is None else _Owned(self._leases, lease)

    async def relay_request(
        self, request: HttpRequest, config: RoomsConfig
    ) -> Response | OwnerLost | None:
        """The answer of ``request.room``'s owner: see `Cluster.relay_request`."""
        owner = await self._owner(request.room)
        if owner is None:
            return None
        if not self._relays.connected:
            return None  # a REQUEST now would be lost unseen: asked again once the link is back
        if await self._speaks_another_version(owner[0]):
            return OTHER_VERSION_RESPONSE
        return await request_through(self._relays, owner[0], request)

    async def _owner(self, room: str) -> tuple[str, float] | None:
        """The node that owns ``room`` if it is another one that answers, else None.

        With it, when its lease lapses unless it renews it (`trio.current_time`): a
        node that has not answered by then is dead, or not the owner any more.
        """
        try:
            owner = await self._leases.owner(room)
            if owner is None or owner[0] == self.node_id or not self._relays.alive(owner[0]):
                return None  # nobody, us (the lease is being given back), or a node gone silent
            lapses = trio.current_time() + await self._leases.remaining(room)
        except BackplaneError:
            return None
        return owner[0], lapses

    async def relay(
        self,
        room: str,
        request: ConnectRequest,
        wire: WireFormat,
        connection: Connection,
        config: RoomsConfig,
    ) -> tuple[int, str] | OwnerLost | None:
        """Serve ``connection``'s session through ``room``'s owner: see `Cluster.relay`."""
        owner = await self._owner(room)
        if owner is None:
            return None
        if not self._relays.connected:
            return None  # an OPEN now would be lost: asked again once the link is back
        node, lapses = owner
        if await self._speaks_another_version(node):
            await close_within(connection, *OTHER_VERSION, config.close_timeout)
            return OTHER_VERSION
        lost = self._lost_relays.pop(connection, None)
        if lost is not None and lost.owner != node:
            lost.drop(f"the room's owner is node {node!r} now, not {lost.owner!r}")
            lost = None
        relayed, unconfirmed = await relay_session(
            self._relays, node, request, wire, connection, config, lapses, lost
        )
        if isinstance(relayed, OwnerLost):
            self._lost_relays[connection] = unconfirmed
            if not self._relays.connected:
                self._lost_with_redis(room)
        elif relayed is None and lost is not None:
            self._lost_relays[connection] = lost  # not resumed there: kept for the next
        return relayed

    async def _speaks_another_version(self, node: str) -> bool:
        """Whether ``node`` speaks another relay protocol than this one (or says none).

        Logged (WARNING) once per node and record: a rolling upgrade's mixed nodes.
        A record Redis did not answer for is taken as this node's own: the relay then
        fails as it would have. A node found to speak this one's is not asked again for
        ``lease_ttl`` (its version changes only with its process, whose leases end first;
        its OPENs and REQUESTs carry the version too, which an owner checks).
        """
        now = trio.current_time()
        if self._same_version.get(node, -math.inf) > now:
            await trio.lowlevel.checkpoint()
            return False
        try:
            record = await self._leases.record_of(node)
        except BackplaneError:
            return False
        if record == _RECORD:
            for known, until in list(self._same_version.items()):
                if until <= now:
                    del self._same_version[known]
            self._same_version[node] = now + self._lease_ttl
            return False
        if self._other_versions.get(node, b"") != record:
            self._other_versions[node] = record
            theirs = "none" if record is None else repr(record.decode(errors="replace"))
            _logger.warning(
                "relays: node %r speaks relay protocol %s, this node %d: its rooms' clients"
                " here are closed with 1012 (routes 503) until it is drained or upgraded",
                node,
                theirs,
                PROTOCOL,
            )
        return True

    def _lost_with_redis(self, room: str) -> None:
        """``room``'s relay broke because this node lost Redis: let its owner reclaim it."""
        now = trio.current_time()
        for name, until in list(self._reclaimable.items()):
            if until <= now:
                del self._reclaimable[name]
        self._reclaimable[room] = now + self._lease_ttl


async def _check_reachable(url: str, node_id: str, timeout: float) -> None:
    """Connect once to ``url`` as the leases and as the relays do (each its own client,
    TLS and authentication), so that a node that never could is refused at its start
    instead of connecting again for ever.

    Raises:
        BackplaneError: either connection could not be made.
    """
    fault: BaseException | None = None
    try:
        name = client_name("leases", node_id)
        async with open_connection(url, timeout=timeout, name=name) as connection:
            await ping(connection, timeout=timeout)
        async with open_resp(url, timeout=timeout, name=client_name("relays", node_id)) as resp:
            with trio.fail_after(timeout):
                await resp.call(b"PING")
    except* (*FAULTS, *RESP_FAULTS) as group:  # coredis's pool runs the connection in a group
        fault = first_leaf(group)
    if fault is not None:  # raised here: inside except* it would be wrapped in a group
        said = f"RedisCluster could not connect to Redis at {redacted(url)}: {explained(fault)}"
        raise BackplaneError(said) from fault


def _check_fenced(storage: Storage, prefix: str) -> None:
    """Refuse a `RedisStorage` whose fences the leases do not raise.

    A new owner's acquisition raises ``{prefix}fence:{room}`` at once; with the storage
    under another prefix, a deposed owner could still write until the new one's first
    commit raised the storage's own fence.

    Raises:
        ValueError: the storage's prefix is not the cluster's.
    """
    if isinstance(storage, RedisStorage) and storage.prefix != prefix:
        raise ValueError(
            f"RedisCluster(prefix={prefix!r}) fences rooms under its prefix, but the"
            f" RedisStorage keeps them under {storage.prefix!r}: give both the same prefix"
        )
