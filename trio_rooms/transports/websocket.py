"""The embedded WebSocket server: trio streams and h11, built for fan-out.

Here are the listener and each connection's task. h11 parses the request head
(`_handshake`, answered in `_opening`), `_inbound` the client's (masked, possibly
fragmented) frames, read by the connection (`_stream_connection`); outbound frames are
framed once per broadcast (see `_framing`) and each session's queued frames are written
with one ``send_all``. What a connection means is the core's serving port
(`admit_session`, `serve_http`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, TypeVar

import trio

from .._core.room import Room
from .._core.rooms import Rooms
from .._core.serving import ParkedSession, WebSocketHead, admit_session, connection_counter
from ._accept import serve_accepting
from ._keepalive import Keepalive
from ._opening import PendingUpgrade, read_opening
from ._parked_stream import ParkedStream
from ._parking import Parking
from ._stream_io import close_stream, log_failure, peer_of
from ._watching import Watching

__all__ = ["serve_websocket"]

RoomT = TypeVar("RoomT", bound=Room[Any])


async def serve_websocket(
    rooms: Rooms[RoomT],
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``rooms`` over WebSocket on ``host:port`` until cancelled.

    Clients connect to ``ws://host:port{prefix}/{room}/websocket`` (``?format=msgpack``
    for binary frames). With ``nursery.start``, returns the bound port once listening
    (pass port 0 for a free one).

    Each connection runs in its own task; whatever goes wrong in one (a bad frame, a
    reset, a failing hook) ends that connection only. When cancelled, the server stops
    accepting, closes its sessions with 1001 and returns once they have ended.
    """
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=1024)
    bound: int = listeners[0].socket.getsockname()[1]
    config = rooms.config
    parking = Parking() if config.park_after is not None and Parking.available() else None
    keepalive = Keepalive(config.ping_interval, config.ping_timeout, config.park_after)
    keepalive.parking = parking
    watching = Watching() if Watching.available() else None
    keepalive.watching = watching
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keepalive.run)
        if parking is not None:
            # Parked connections run on in this nursery: it owns them for shutdown.
            nursery.start_soon(parking.run, nursery)
        if watching is not None:
            await nursery.start(watching.run)
        handler = partial(_serve_stream, rooms, keepalive)
        await nursery.start(serve_accepting, handler, listeners)
        task_status.started(bound)


async def serve_stream(rooms: Rooms[RoomT], stream: trio.abc.Stream) -> None:
    """Run one WebSocket connection on ``stream`` until its session ends, then close it.

    The handshake must complete within ``handshake_timeout``; a request that is not a
    valid opening handshake gets a 4xx answer (426 for another WebSocket version), a
    request for another path 404 and an invalid room name 400, before any room exists.
    Whatever goes wrong ends this connection only: what the peer caused (a reset, bad
    input) is logged in one rate-limited line, anything else with its traceback. No
    keepalive pings are sent (`serve_websocket` runs them for its connections).
    """
    try:
        peer = peer_of(stream)  # fails if the peer reset the connection before its accept
    except Exception as exc:
        log_failure(exc, None)
        await close_stream(stream)
        return
    await _serve_stream(rooms, None, stream, peer)


async def _serve_stream(
    rooms: Rooms[Any],
    keepalive: Keepalive | None,
    stream: trio.abc.Stream,
    peer: tuple[str, int] | None,
) -> None:
    # This task lives as long as its session, unless it parks: what its frame holds is
    # kept per connection (no closures, whose cells would stay; no ``with`` block, whose
    # ``__exit__`` would; the handshake's objects go).
    parked: ParkedStream | None = None  # then it owns what the finally blocks end
    try:
        # Counted from the accept: a client still in its handshake holds a slot too.
        counter = connection_counter(rooms)
        address = peer[0] if peer is not None else None
        counter.enter(address)
        try:
            request = await read_opening(rooms, stream, peer)
            if request is not None:
                upgrade = PendingUpgrade(stream, rooms.config, keepalive, request)
                head = WebSocketHead(request.target, request.headers, peer, request.subprotocols)
                try:
                    # The session's run is awaited here, in this frame: a coroutine less.
                    session = await admit_session(
                        rooms, head, accept=upgrade.accept, refuse=upgrade.refuse
                    )
                    del request, head  # the handshake's: not kept while the session runs
                    ended = await session
                    if isinstance(ended, ParkedSession):
                        parked = ParkedStream(stream, peer, counter, address, upgrade, ended)
                finally:
                    if parked is None:
                        upgrade.ended()
        finally:
            if parked is None:
                counter.exit(address)
    except Exception as exc:
        log_failure(exc, peer)  # never let one connection reach the listener: it would stop
    finally:
        if parked is None:
            await close_stream(stream)
    if parked is not None:
        await parked.settle()
