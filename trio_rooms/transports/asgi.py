"""The ASGI transport: rooms and their HTTP routes behind hypercorn's trio worker.

Two ways to get an app:

- `bind_asgi` serves a `Rooms` you already own, for ``hypercorn.trio.serve`` in your
  own nursery next to `open_rooms`;
- `asgi_app` owns its `Rooms` through the ASGI lifespan, for the hypercorn CLI
  (``hypercorn --worker-class trio module:app``).

The URLs, validation and close codes are the embedded server's (`route_websocket`).
Hypercorn does the WebSocket protocol itself: it answers pings, enforces its own
``websocket_max_message_size`` (set it from `RoomsConfig.max_message_size`, see
`hypercorn_config`) and completes the close handshake. HTTP route requests count
against the connection caps while they run (503 past them), like sessions; their
body must arrive within ``request_timeout`` (408) and ``max_message_size`` (413).
What ASGI cannot carry:

- the close code a client sent: hypercorn reports every client-initiated close as
  1006 (hypercorn issue #127), so ``on_close`` sees 1006 where the embedded server
  reports the client's code; a close the server starts is reported with its code;
- a message over hypercorn's limit is closed by hypercorn with 1009 and reaches the
  session as 1006;
- writes: hypercorn shields its socket writes, so a session closed as a slow
  consumer ends only when its client reads or the connection drops;
- handshakes: the connection caps count a connection from its ``websocket.connect``
  event; a client that never completes its handshake is hypercorn's to time out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeAlias, TypeVar

from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIFramework

from .._core.backplane import Backplane
from .._core.config import RoomsConfig
from .._core.ownership import Cluster
from .._core.room import Room, room_class_of
from .._core.rooms import Rooms, open_rooms
from .._core.routes import route_table
from .._core.storage import Storage
from ._asgi_app import RoomsApp
from ._hypercorn_guard import guard_connections

__all__ = ["ASGIApp", "asgi_app", "bind_asgi", "hypercorn_config"]

RoomT = TypeVar("RoomT", bound=Room[Any])

#: An ASGI 3 application, as hypercorn types it.
ASGIApp: TypeAlias = ASGIFramework


def bind_asgi(rooms: Rooms[RoomT]) -> ASGIApp:
    """An ASGI app serving ``rooms``, which the caller keeps open while it runs.

    ::

        async with trio_rooms.open_rooms(ChatRoom) as rooms, trio.open_nursery() as nursery:
            config = trio_rooms.hypercorn_config(rooms.config, "127.0.0.1:8000")
            await nursery.start(hypercorn.trio.serve, trio_rooms.bind_asgi(rooms), config)

    Leave the `open_rooms` block before stopping hypercorn (nest hypercorn's nursery
    outside it): the sessions are then closed with 1001 while hypercorn still
    carries their close frames. If hypercorn is cancelled first, each session is
    still sent 1001, without waiting for the client's answer.

    The app answers the ASGI lifespan at once (the `Rooms` is not its to open). Like
    `asgi_app`, it guards hypercorn's per-connection task, so that a request hypercorn
    itself fails on ends that connection only, not the server.
    """
    guard_connections()
    return RoomsApp.bound(rooms)


def asgi_app(
    factory: Callable[[str], RoomT],
    *,
    config: RoomsConfig | None = None,
    storage: Storage | None = None,
    backplane: Backplane | None = None,
    cluster: Cluster | None = None,
) -> ASGIApp:
    """An ASGI app that opens its own `Rooms` for the ASGI lifespan.

    For the hypercorn CLI, with the trio worker::

        # chat.py
        app = trio_rooms.asgi_app(ChatRoom)

        $ hypercorn --worker-class trio chat:app

    `open_rooms` is entered on ``lifespan.startup`` and left on ``lifespan.shutdown``;
    requests that arrive outside that window get 503 (a WebSocket is refused before
    its upgrade). Hypercorn stops a worker by waiting ``graceful_timeout`` for open
    connections and then cancelling them: every session is then sent 1001.

    Set hypercorn's ``websocket_max_message_size`` to ``config.max_message_size``
    (a TOML file given with ``--config``: ``websocket_max_message_size = 1048576``;
    or ``--config python:chat`` with a module-level ``websocket_max_message_size``).

    Each of hypercorn's ``--workers`` is a process of its own that imports the module,
    hence has its own rooms: give them a ``cluster`` (a `RedisCluster` made at import is
    a node of its own in each worker) so that a room lives once across the workers,
    whichever one a client reaches; without it, run one worker.

    Args:
        factory: Makes a room from its name, as for `open_rooms`.
        config: Limits and options; `RoomsConfig()` by default.
        storage: Where session data and room state live, as for `open_rooms`.
        backplane: Broadcasts and membership across nodes, as for `open_rooms`.
        cluster: The single-owner mode, as for `open_rooms`.

    Raises:
        TypeError: ``factory`` is a room class whose routes are declared wrongly.
        ValueError: both a backplane and a cluster were given.
    """
    if backplane is not None and cluster is not None:
        # Here, not at the lifespan's startup: the CLI then fails as it imports the app.
        raise ValueError("asgi_app takes a backplane or a cluster, not both")
    guard_connections()
    config = config or RoomsConfig()
    _check_routes(factory)
    open_own = partial(
        open_rooms, factory, config=config, storage=storage, backplane=backplane, cluster=cluster
    )
    return RoomsApp.owning(open_own)


def hypercorn_config(
    rooms_config: RoomsConfig, bind: str | Sequence[str] = "127.0.0.1:8000"
) -> HypercornConfig:
    """A hypercorn ``Config`` that listens on ``bind`` and agrees with ``rooms_config``.

    ``websocket_max_message_size`` is ``rooms_config.max_message_size``, and
    ``keep_alive_timeout`` is ``rooms_config.handshake_timeout`` (hypercorn drops a
    connection whose request head is not complete by then: a slowloris client). Pass
    port 0 for a free port: ``hypercorn.trio.serve`` reports the bound addresses
    through ``task_status`` (``["http://127.0.0.1:54321"]``).

    ``read_timeout`` stays unset: hypercorn applies it to every read of a connection,
    WebSocket sessions included, and nothing pings a quiet session behind hypercorn,
    so it would drop idle clients. A route request's body is bounded by the app
    instead (``request_timeout``: 408, then the connection is closed); hypercorn's own
    ``h11_max_incomplete_size`` (16 KiB) bounds a request head, and its
    ``max_app_queue_size`` the body chunks it reads ahead of the app.

    ``websocket_ping_interval`` stays off: with it, hypercorn 0.18 pings from a task of
    its own, and a client's protocol error that closes the connection while that task
    writes raises ``trio.BusyResourceError`` out of hypercorn's ``protocol_send``, which
    stops the whole server (``tests/abuse/test_fuzz.py``). Those pings set no deadline
    for the pong anyway (they only keep middleboxes from dropping an idle connection), so
    behind hypercorn a peer that vanished without a FIN is noticed when a write to it
    fails, with or without them.
    """
    config = HypercornConfig()
    config.bind = [bind] if isinstance(bind, str) else list(bind)
    config.websocket_max_message_size = rooms_config.max_message_size
    config.keep_alive_timeout = rooms_config.handshake_timeout
    return config


def _check_routes(factory: object) -> None:
    """Check the routes of the room class the factory makes, when it can be told."""
    room_class = room_class_of(factory)
    if room_class is not None:
        route_table(room_class)
