"""``RoomsConfig``: every limit and timeout, with its default."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, final

import attrs

from .._errors import RoomNameError
from .origins import normalize_origin

__all__ = [
    "ROOM_NAME_PATTERN",
    "ReplayLimits",
    "RoomsConfig",
    "decode_unreserved",
    "room_name_in_path",
    "validate_room_name",
]

#: Room names: 1 to 128 of ``A-Z a-z 0-9 _ . ~ -``, and not ``.`` or ``..``.
#: Checked before any room exists, so a name can never escape a URL or a storage key.
#: In a request's path its characters may be percent-encoded (`room_name_in_path`).
ROOM_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.~-]{1,128}")

_MiB = 1024 * 1024


def validate_room_name(name: str) -> str:
    """Return ``name`` if it is a valid room name, else raise `RoomNameError`."""
    if ROOM_NAME_PATTERN.fullmatch(name) is None or name in {".", ".."}:
        raise RoomNameError(name)
    return name


# RFC 3986 section 2.3: the unreserved characters, the only ones a room name holds.
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_ENCODED: Final = re.compile(r"%([0-9A-Fa-f]{2})")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else match[0]  # left encoded: refused below


def decode_unreserved(path: str) -> str:
    """``path`` with its percent-encoded unreserved characters decoded (RFC 3986 section
    6.2.2.2: ``/rooms/x/%65cho`` is ``/rooms/x/echo``); any other ``%`` stays as sent
    (``%2F`` is not ``/``). Decoding again changes nothing: no ``%`` is ever decoded.
    """
    return _PERCENT_ENCODED.sub(_decode_unreserved, path) if "%" in path else path


def room_name_in_path(segment: str) -> str:
    """The room a request path's segment names, else raise `RoomNameError`.

    Percent-encoded unreserved characters are the characters (`decode_unreserved`:
    ``%61bc`` is room ``abc``). Any other ``%`` (an encoded ``/``, ``:``, control or
    non-ASCII octet, or no valid escape) stays, and the name is refused, as the client
    sent it: every transport and route shares this.
    """
    if "%" not in segment:
        return validate_room_name(segment)
    try:
        return validate_room_name(decode_unreserved(segment))
    except RoomNameError:
        raise RoomNameError(segment) from None


# attrs' validators: "'close_timeout' must be > 0: -1". A NaN is refused too.
_positive = attrs.validators.gt(0.0)
_positive_or_none = attrs.validators.optional(attrs.validators.gt(0.0))
_positive_int = attrs.validators.gt(0)
_positive_int_or_none = attrs.validators.optional(attrs.validators.gt(0))


def _origins(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("RoomsConfig.allowed_origins takes a collection of origins, not a str")
    return frozenset(normalize_origin(origin) for origin in value)


def _valid_prefix(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value and (not value.startswith("/") or value.endswith("/")):
        raise ValueError(
            f"RoomsConfig.prefix must start with '/' and not end with it, got {value!r}"
        )


@final
@attrs.frozen(kw_only=True)
class ReplayLimits:
    """How much of a room's replay log a resuming client can be replayed from.

    A client that resumes gets every frame it missed, if they are all among the newest
    ``max_messages`` frames of its room, within ``max_bytes`` of payload and at most
    ``max_age`` seconds old; else it gets ``{"$resync": ...}`` and the session's
    ``on_resync`` runs. Give one as ``RoomsConfig.replay`` (every room) or as a room
    class's ``replay`` attribute (that room).
    """

    #: Frames the log keeps (the older ones are dropped from storage too).
    max_messages: int = attrs.field(default=1000, validator=_positive_int)
    #: Payload bytes a replay reaches back over.
    max_bytes: int = attrs.field(default=_MiB, validator=_positive_int)
    #: Seconds a frame stays replayable.
    max_age: float = attrs.field(default=600.0, validator=_positive)


@final
@attrs.frozen(kw_only=True)
class RoomsConfig:
    """Limits, timeouts and wire options shared by every room and transport.

    Every field has a default that is safe to expose to the internet.
    """

    #: URL prefix: sessions connect to ``{prefix}/{room}/websocket``.
    prefix: str = attrs.field(default="/rooms", validator=_valid_prefix)
    #: Largest client message in bytes; a bigger one closes the session with 1009. An
    #: HTTP route's request body has the same bound: a bigger one gets 413.
    max_message_size: int = attrs.field(default=_MiB, validator=_positive_int)
    #: Seconds a client has to complete its opening handshake.
    handshake_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Seconds an HTTP route request has to send its whole body, counted once its head
    #: has arrived; a slower one gets 408, its connection is closed and the route does
    #: not run.
    request_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Seconds of silence from a client before the server pings it.
    ping_interval: float = attrs.field(default=20.0, validator=_positive)
    #: Seconds to wait for any frame after a ping before the peer counts as dead.
    ping_timeout: float = attrs.field(default=20.0, validator=_positive)
    #: Seconds of silence from a client after which its session parks, if it is
    #: quiescent: its tasks end (not its `Session`) until the client sends something
    #: or the session needs its writer again. None: never. The embedded server only.
    park_after: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    #: Seconds to wait for the peer's close frame after sending ours.
    close_timeout: float = attrs.field(default=5.0, validator=_positive)
    #: Seconds graceful shutdown waits for sessions to close before cancelling them.
    shutdown_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Outbound messages a session may have queued for longer than
    #: ``slow_consumer_timeout`` before it is closed with 1008 (a burst may briefly
    #: queue more: the session's writer has not run yet).
    outbound_max_messages: int = attrs.field(default=256, validator=_positive_int)
    #: Seconds a session's queue may stay at or over ``outbound_max_messages``.
    slow_consumer_timeout: float = attrs.field(default=5.0, validator=_positive)
    #: Ceiling on a session's queued bytes: a message that would go past it closes the
    #: session with 1008 at once. A message counts for at most half of it, so two
    #: messages of any size (``max_message_size`` and larger) always fit.
    outbound_max_bytes: int = attrs.field(default=_MiB, validator=_positive_int)
    #: Received messages waiting for the session's handler; when full, the socket
    #: is not read until the handler catches up (TCP backpressure).
    inbound_max_messages: int = attrs.field(default=32, validator=_positive_int)
    #: Requests of one session whose handlers have not returned yet (`trio_rooms.replies`);
    #: one more is answered at once with ``{"$error": ...}`` ("too many requests in flight").
    max_requests_in_flight: int = attrs.field(default=64, validator=_positive_int)
    #: Seconds a room without sessions stays alive before it is evicted.
    room_idle_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: Seconds after a session's connection ended (or its server died) during which its
    #: token resumes it.
    resume_window: float = attrs.field(default=600.0, validator=_positive)
    #: The replay log's bounds for rooms that keep one (``Room.replay``); None: no room
    #: replays missed frames to a resuming client.
    replay: ReplayLimits | None = ReplayLimits()
    #: Wire names in lowerCamelCase (``user_id`` -> ``userId``); False keeps Python names.
    camel_case: bool = True
    #: Reject client messages with keys the message class does not declare.
    forbid_extra_keys: bool = True
    #: Check every message a session sends or a room broadcasts against its class's
    #: annotations first: a mismatch raises `TypeError` at the call, naming the field
    #: (``Said.user_id: expected str, got int @ $.userId``), instead of going out for
    #: the client to refuse. Checked once per broadcast, whatever the recipients.
    check_outbound: bool = True
    #: On the first `open_rooms` of the process, collect garbage once and then freeze the
    #: heap (`gc.freeze`): the modules, classes and start-up state already built are never
    #: walked again by CPython's full collections, which under load run every few
    #: thousand messages (a few % of the server's CPU). What is alive at that moment is
    #: never collected as a cycle; False leaves the garbage collector alone.
    freeze_heap: bool = True

    # ------------------------------------------------------------- abuse limits

    #: Origins (``"https://chat.example.com"``) a browser may connect from; any other
    #: ``Origin`` gets 403 before the upgrade. None (the default) allows every origin.
    #: Requests without ``Origin`` (not from a browser) are let through.
    allowed_origins: frozenset[str] | None = attrs.field(default=None, converter=_origins)
    #: Open connections (handshaking ones included) before new ones get 503.
    max_connections: int = attrs.field(default=10_000, validator=_positive_int)
    #: Open connections from one client address before its new ones get 503.
    max_connections_per_address: int = attrs.field(default=100, validator=_positive_int)
    #: Live rooms (starting and stopping ones included) before a new one is refused:
    #: 503 for a connection or a route request, `TooManyRoomsError` from ``Rooms.get``.
    #: Any route request creates a room that stays ``room_idle_timeout``; as many as
    #: ``max_connections``, so a server full of connections each in its own room fits.
    max_rooms: int = attrs.field(default=10_000, validator=_positive_int)
    #: Values a room keeps in memory once read or written (the least recently used
    #: beyond it are read from storage again). Unsaved writes are always kept.
    max_cached_values: int = attrs.field(default=10_000, validator=_positive_int)
    #: Sessions one room admits before new connections to it get 503; None: no limit.
    max_sessions_per_room: int | None = attrs.field(default=None, validator=_positive_int_or_none)
    #: Messages per second a session may send, on average (a token bucket); None: no
    #: limit. A message over the limit is answered with an error frame and not handled.
    rate_limit: float | None = attrs.field(default=50.0, validator=_positive_or_none)
    #: Messages a session may send at once above ``rate_limit`` (the bucket's size).
    rate_limit_burst: int = attrs.field(default=100, validator=_positive_int)
    #: Messages over the limit before the session is closed with 1008; the count
    #: starts again each time the client lets its bucket fill up.
    rate_limit_excess: int = attrs.field(default=100, validator=_positive_int)
    #: Invalid frames in a row (undecodable, or binary on a JSON session) before the
    #: session is closed with 1008.
    max_invalid_in_a_row: int = attrs.field(default=10, validator=_positive_int)

    #: Tags one session may have (``Session.tags``); one more raises `ValueError`.
    max_tags_per_session: int = attrs.field(default=32, validator=_positive_int)
    #: Characters a tag may have; a longer (or empty) one raises `ValueError`.
    max_tag_length: int = attrs.field(default=128, validator=_positive_int)

    # ---------------------------------------------------------------- presence

    #: Presences one room holds (over every key, and every node with a backplane);
    #: ``Session.join_presence`` past it raises `PresenceLimitError`. Across nodes it is
    #: checked against what the node knows, so a race may pass it by a few.
    max_presences_per_room: int = attrs.field(default=10_000, validator=_positive_int)
    #: Bytes of one presence: its key and its metadata encoded as JSON; a bigger one is
    #: refused with `PresenceLimitError` (each subscribed client holds every presence).
    max_presence_size: int = attrs.field(default=4096, validator=_positive_int)

    # ------------------------------------------------------------------ alarms

    #: Characters an alarm name may have; a longer (or empty) one is refused with
    #: `ValueError` by ``Room.set_alarm``.
    max_alarm_name_length: int = attrs.field(default=128, validator=_positive_int)
    #: Seconds before an alarm whose ``on_alarm`` raised runs again; doubled at each
    #: failure, up to ``alarm_retry_max_delay``.
    alarm_retry_delay: float = attrs.field(default=1.0, validator=_positive)
    #: Longest wait between two runs of a failing alarm.
    alarm_retry_max_delay: float = attrs.field(default=60.0, validator=_positive)
    #: Runs of ``on_alarm`` for one alarm (the first one included) that may raise before
    #: the alarm is dropped, with an error logged.
    alarm_max_attempts: int = attrs.field(default=6, validator=_positive_int)
    #: ``on_alarm`` handlers running at once across the rooms (one at a time per room,
    #: like every event); the alarms due beyond it wait for a free slot.
    max_concurrent_alarms: int = attrs.field(default=100, validator=_positive_int)
