"""What one entry of a node's relay stream says, and its bytes. No I/O here.

Every node reads one Redis stream, ``{prefix}relay:{node}``; the other nodes add to it
what concerns the relays between them and this node. An entry is one msgpack array
``[kind, source node, relay id, seq, *body]``: ``seq`` counts the entries of one relay
in one direction from 1, so that an entry lost (the stream trimmed past its reader) is
seen as a gap instead of a silently missing frame. A FRAMES entry is for many relays
(relay "" and seq 0: the relays and their seqs are in its body, see `_relay_frames`).
An OPEN and a REQUEST start their body with the relay protocol's version (`PROTOCOL`):
an owner runs only what its own version asks for (`VersionError`), and each node
advertises its version beside its leases, so that a client's node never hands a
session to an owner of another (`trio_rooms.backplane._cluster`). Bodies by kind:

======== ============= ==========================================================
kind     from          body
======== ============= ==========================================================
OPEN     the client's  version, room, wire format, path, query string, headers,
         node          client address or None, subprotocols, the credit window, the
                       lost relay whose session it resumes ("" if none)
MESSAGE  client's node a message from the client (str: text, bytes: binary)
CREDIT   owner         how many messages its session has taken so far
ACCEPTED owner         the messages the resumed relay's session took (-1: not known
                       here, or none resumed); the session runs: frames may follow
MOVED    owner         (the room is not the owner's any more: nothing was done)
FRAMES   owner         the relays it is for, and their frames in order (`_relay_frames`)
COUNTS   owner         wire format: the client counts frames (a delivery policy's
                       drops are told it, in that format)
REQUEST  client's node  a route request: version, room, method, path, query string,
                       headers, body, client address or None
RESPONSE owner         status, headers, body: the route's answer (the relay is gone)
REPORT   client's node  what its queue's delivery policies did since the last REPORT:
                       dropped-oldest, coalesced and slow-consumer counts
CLOSE    either        code, reason, by_peer, send_close (`ConnectionEnded`'s)
END      owner         code, reason: the session ended and its relay is gone
GONE     either        (no such relay here: drop yours) and, answering an entry of a
                       relay it does not know, that entry's seq: nothing from it on
                       was handed to a session there
BEAT     either        the sender's incarnation (relay "" and seq 0: the node is
                       alive; a new incarnation breaks the relays of the old one)
======== ============= ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple, TypeAlias, cast, final

import attrs
import msgpack

from .._core.request import ConnectRequest
from .._core.routes import HttpRequest, Response
from ..codec import WireFormat

__all__ = [
    "ACCEPTED",
    "BEAT",
    "CLOSE",
    "COUNTS",
    "CREDIT",
    "END",
    "FRAMES",
    "GONE",
    "MESSAGE",
    "MOVED",
    "OPEN",
    "PROTOCOL",
    "REPORT",
    "REQUEST",
    "RESPONSE",
    "Entry",
    "EntryError",
    "EntryReader",
    "Opening",
    "VersionError",
    "accepted",
    "closing",
    "counts",
    "decode",
    "decode_all",
    "encode",
    "ending",
    "gone",
    "message_head",
    "opening",
    "opening_body",
    "pack",
    "reported",
    "request_body",
    "requested",
    "responded",
    "response_body",
]

OPEN: Final = "o"
MESSAGE: Final = "m"
CREDIT: Final = "k"
ACCEPTED: Final = "a"
MOVED: Final = "v"
FRAMES: Final = "f"
COUNTS: Final = "n"
CLOSE: Final = "c"
END: Final = "e"
GONE: Final = "g"
BEAT: Final = "h"
REQUEST: Final = "q"
RESPONSE: Final = "r"
REPORT: Final = "p"


#: The relay protocol's version. Raise it whenever an entry's meaning or shape changes:
#: nodes of two versions do not relay to each other. An OPEN or REQUEST without one is
#: of version 1 (before the version was sent).
PROTOCOL: Final = 2


class EntryError(ValueError):
    """Bytes on a relay stream that are not an entry, or a body that is not its kind's."""


class VersionError(EntryError):
    """An OPEN or REQUEST of another version of the relay protocol than `PROTOCOL`."""

    def __init__(self, kind: str, version: int) -> None:
        super().__init__(f"an {kind} of relay protocol {version}; this node speaks {PROTOCOL}")
        #: The version the entry says it is of (1: it says none).
        self.version = version


def _versioned(kind: str, body: Sequence[object]) -> Sequence[object]:
    """``body`` after its version, which must be `PROTOCOL`.

    Raises:
        VersionError: it is another version's.
    """
    version = body[0] if body else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise VersionError(kind, 1)
    if version != PROTOCOL:
        raise VersionError(kind, version)
    return body[1:]


_KINDS: Final = frozenset(
    {OPEN, MESSAGE, CREDIT, ACCEPTED, MOVED, FRAMES, COUNTS, CLOSE, END, GONE, BEAT}
    | {REQUEST, RESPONSE, REPORT}
)
_WIRES: Final[dict[str, WireFormat]] = {"json": "json", "msgpack": "msgpack"}


@final
class Entry(NamedTuple):
    """One decoded entry; ``body`` is checked by the kind's reader, not here.

    A named tuple, not an attrs class: one is made per entry read (hot on both nodes).
    """

    kind: str
    source: str
    relay: str
    seq: int
    body: tuple[object, ...] = ()


@final
@attrs.frozen
class Opening:
    """An OPEN's body: the session the client's node asks the owner to run."""

    request: ConnectRequest
    wire: WireFormat
    window: int
    #: The lost relay of the client's node whose session this one resumes, or "".
    resumes: str = ""


#: Makes an `Entry` of its five fields without the named tuple's own ``__new__``, a
#: Python function (a frame per entry read, each relayed message one): the tuple's.
_NewEntry: TypeAlias = Callable[[type[Entry], tuple[str, str, str, int, tuple[object, ...]]], Entry]
_new_entry: Final = cast("_NewEntry", tuple.__new__)  # pyright: ignore[reportUnknownMemberType]


#: Packs every entry: `msgpack.packb` makes a packer per call, and is a call more (one
#: entry is packed per relayed message). It resets itself if packing fails.
_PACKER: Final = msgpack.Packer(use_bin_type=True)


def encode(kind: str, source: str, relay: str, seq: int, *body: object) -> bytes:
    """The bytes of one entry."""
    packed: bytes = _PACKER.pack([kind, source, relay, seq, *body])
    return packed


def message_head(source: str, relay: str) -> bytes:
    """The first bytes of every MESSAGE of ``relay`` from ``source``: `encode`'s for it
    are these, then ``pack(seq)`` and ``pack(message)``."""
    return b"\x95" + _PACKER.pack(MESSAGE) + _PACKER.pack(source) + _PACKER.pack(relay)


#: One value's bytes, as packed in an entry (`message_head`).
pack: Final[Callable[[object], bytes]] = _PACKER.pack


def decode(data: bytes) -> Entry:
    """One entry from its bytes.

    Raises:
        EntryError: ``data`` is not an entry.
    """
    try:
        fields: object = msgpack.unpackb(data, raw=False, use_list=False)
    except Exception as exc:  # msgpack raises several unrelated classes
        raise EntryError(f"a relay entry is not msgpack: {exc!r}") from exc
    return _entry(fields)


def decode_all(data: bytes) -> list[Entry | EntryError]:
    """The entries of one stream entry, in order (see `EntryReader.read`)."""
    return EntryReader().read(data)


@final
class EntryReader:
    """Decodes stream entries one after another with one msgpack unpacker.

    The link reads every stream entry through one: making an unpacker costs more than
    unpacking a small entry with it.
    """

    __slots__ = ("_unpacker",)

    def __init__(self) -> None:
        self._unpacker = msgpack.Unpacker(raw=False, use_list=False)

    def read(self, data: bytes) -> list[Entry | EntryError]:
        """The entries of one stream entry, in order: the link writes the entries of a
        turn to one node as one stream entry, their bytes one after another.

        An item that is not an entry is an `EntryError` in its place; bytes that are not
        msgpack, or cut short, end the list with one.
        """
        unpacker = self._unpacker
        unpacker.feed(data)
        found: list[Entry | EntryError] = []
        try:
            for fields in unpacker:
                # `_entry`'s checks, inline (one call less per entry read, on both
                # nodes); what fails them goes to `_entry` for its error.
                if type(fields) is tuple and len(fields) >= 4:  # pyright: ignore[reportUnknownArgumentType]
                    if TYPE_CHECKING:  # (not at run time: a call per entry)
                        fields = cast("tuple[object, ...]", fields)
                    kind, source, relay, seq = fields[:4]
                    if (
                        type(kind) is str
                        and kind in _KINDS
                        and type(source) is str
                        and type(relay) is str
                        and type(seq) is int
                        and seq >= 0
                    ):
                        found.append(_new_entry(Entry, (kind, source, relay, seq, fields[4:])))
                        continue
                try:
                    found.append(_entry(fields))  # pyright: ignore[reportUnknownArgumentType]
                except EntryError as exc:
                    found.append(exc)
            # Raises ValueError while an entry is cut short: nothing may be left over.
            unpacker.read_bytes(0)
        except Exception as exc:  # msgpack raises several unrelated classes
            found.append(EntryError(f"a relay entry is not msgpack, or cut short: {exc!r}"))
            # What is left in it would be read as the start of the next stream entry.
            self._unpacker = msgpack.Unpacker(raw=False, use_list=False)
        return found


def _entry(fields: object) -> Entry:
    # Exact types (msgpack makes no subclasses) and a slice for the body: one per entry.
    if type(fields) is not tuple or len(fields) < 4:  # pyright: ignore[reportUnknownArgumentType]
        raise EntryError(f"a relay entry is an array of at least 4 items, got {fields!r:.80}")
    if TYPE_CHECKING:  # (not at run time: a `cast` is a call, and this is one per entry)
        fields = cast("tuple[object, ...]", fields)
    kind, source, relay, seq = fields[:4]
    # `kind`'s type checked, not cast (the same reason): a str from here on.
    if (
        type(kind) is not str
        or kind not in _KINDS
        or type(source) is not str
        or type(relay) is not str
    ):
        raise EntryError(f"not a relay entry's head: {fields[:3]!r:.80}")
    if type(seq) is not int or seq < 0:
        raise EntryError(f"a relay entry's seq is a count, got {seq!r:.40}")
    return Entry(kind, source, relay, seq, fields[4:])


def accepted(body: Sequence[object]) -> int | None:
    """An ACCEPTED's body: the messages the resumed relay's session took, if known.

    Raises:
        EntryError: ``body`` is not an ACCEPTED's.
    """
    if len(body) != 1 or not isinstance(body[0], int) or isinstance(body[0], bool):
        raise EntryError(f"an ACCEPTED has a count, got {body!r:.40}")
    taken = body[0]
    if taken < -1:
        raise EntryError(f"an ACCEPTED's count is -1 or more, got {taken}")
    return None if taken == -1 else taken


def closing(body: Sequence[object]) -> tuple[int, str, bool, bool]:
    """A CLOSE's body: code, reason, by_peer, send_close.

    Raises:
        EntryError: ``body`` is not a CLOSE's.
    """
    if len(body) != 4:
        raise EntryError(f"a CLOSE has 4 fields, got {len(body)}")
    code, reason = ending(body[:2])
    by_peer, send_close = body[2:]
    if not isinstance(by_peer, bool) or not isinstance(send_close, bool):
        raise EntryError("a CLOSE's by_peer and send_close are booleans")
    return code, reason, by_peer, send_close


def counts(body: Sequence[object]) -> WireFormat:
    """A COUNTS's body: the wire format of the frames that tell the client of drops.

    Raises:
        EntryError: ``body`` is not a COUNTS's.
    """
    if len(body) != 1 or not isinstance(body[0], str) or body[0] not in _WIRES:
        raise EntryError(f"a COUNTS has a wire format, got {body!r:.40}")
    return _WIRES[body[0]]


def gone(body: Sequence[object]) -> int | None:
    """A GONE's body: the seq of the entry it answers, None if it says none (a relay's
    own GONE, from the end that knew it).

    Raises:
        EntryError: ``body`` is not a GONE's.
    """
    if not body:
        return None
    seq = body[0]
    if len(body) != 1 or not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise EntryError(f"a GONE answers an entry's seq, got {body!r:.40}")
    return seq


def ending(body: Sequence[object]) -> tuple[int, str]:
    """An END's body: the code and reason the session ended with.

    Raises:
        EntryError: ``body`` is not an END's.
    """
    if len(body) != 2:
        raise EntryError(f"an END has 2 fields, got {len(body)}")
    code, reason = body
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(reason, str):
        raise EntryError(f"a close code and reason, got {body!r:.60}")
    return code, reason


def opening_body(
    request: ConnectRequest, wire: WireFormat, window: int, resumes: str = ""
) -> tuple[object, ...]:
    """An OPEN's body for ``request``; ``resumes`` is the lost relay it takes over."""
    return (
        PROTOCOL,
        request.room,
        wire,
        request.path,
        request.query_string,
        [list(header) for header in request.headers],
        list(request.client) if request.client is not None else None,
        list(request.subprotocols),
        window,
        resumes,
    )


def opening(body: Sequence[object]) -> Opening:
    """What an OPEN's body asks for.

    Raises:
        VersionError: ``body`` is an OPEN of another version.
        EntryError: ``body`` is not an OPEN's.
    """
    body = _versioned("OPEN", body)
    if len(body) != 9:
        raise EntryError(f"an OPEN has 9 fields, got {len(body)}")
    room, wire, path, query, headers, client, subprotocols, window, resumes = body
    if not (isinstance(room, str) and isinstance(path, str) and isinstance(query, str)):
        raise EntryError("an OPEN's room, path and query string are strings")
    if not isinstance(wire, str) or wire not in _WIRES:
        raise EntryError(f"an OPEN's wire format is json or msgpack, got {wire!r:.40}")
    if not isinstance(window, int) or window < 1:
        raise EntryError(f"an OPEN's credit window is a positive count, got {window!r:.40}")
    if not isinstance(resumes, str):
        raise EntryError(f"an OPEN's resumed relay is a string, got {resumes!r:.40}")
    request = ConnectRequest(
        room=room,
        path=path,
        query_string=query,
        headers=tuple(_pair(header) for header in _items(headers)),
        client=_address(client),
        subprotocols=tuple(_string(protocol) for protocol in _items(subprotocols)),
    )
    return Opening(request, _WIRES[wire], window, resumes)


def reported(body: Sequence[object]) -> tuple[int, int, int]:
    """A REPORT's body: dropped-oldest, coalesced and slow-consumer counts.

    Raises:
        EntryError: ``body`` is not a REPORT's.
    """
    if len(body) != 3:
        raise EntryError(f"a REPORT has 3 counts, got {len(body)} fields")
    dropped_oldest, coalesced, slow_consumers = (_count(field) for field in body)
    return dropped_oldest, coalesced, slow_consumers


def request_body(request: HttpRequest) -> tuple[object, ...]:
    """A REQUEST's body for ``request``."""
    return (
        PROTOCOL,
        request.room,
        request.method,
        request.path,
        request.query_string,
        [list(header) for header in request.headers],
        request.body,
        list(request.client) if request.client is not None else None,
    )


def requested(body: Sequence[object]) -> HttpRequest:
    """The route request a REQUEST carries.

    Raises:
        VersionError: ``body`` is a REQUEST of another version.
        EntryError: ``body`` is not a REQUEST's.
    """
    body = _versioned("REQUEST", body)
    if len(body) != 7:
        raise EntryError(f"a REQUEST has 7 fields, got {len(body)}")
    room, method, path, query, headers, data, client = body
    if not all(isinstance(field, str) for field in (room, method, path, query)):
        raise EntryError("a REQUEST's room, method, path and query string are strings")
    if not isinstance(data, bytes):
        raise EntryError(f"a REQUEST's body is bytes, got {data!r:.40}")
    return HttpRequest(
        room=_string(room),
        method=_string(method),
        path=_string(path),
        query_string=_string(query),
        headers=tuple(_pair(header) for header in _items(headers)),
        body=data,
        client=_address(client),
    )


def response_body(response: Response) -> tuple[object, ...]:
    """A RESPONSE's body for ``response``."""
    return (response.status, [list(header) for header in response.headers], response.body)


def responded(body: Sequence[object]) -> Response:
    """The response a RESPONSE carries.

    Raises:
        EntryError: ``body`` is not a RESPONSE's.
    """
    if len(body) != 3:
        raise EntryError(f"a RESPONSE has 3 fields, got {len(body)}")
    status, headers, data = body
    if not isinstance(status, int) or not 100 <= status <= 599 or not isinstance(data, bytes):
        raise EntryError(f"a RESPONSE is a status and a body, got {body!r:.60}")
    return Response(status, tuple(_pair(header) for header in _items(headers)), data)


def _items(value: object) -> tuple[object, ...]:
    if not isinstance(value, tuple):
        raise EntryError(f"expected an array, got {value!r:.40}")
    return value  # pyright: ignore[reportUnknownVariableType]


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EntryError(f"expected a count, got {value!r:.40}")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise EntryError(f"expected a string, got {value!r:.40}")
    return value


def _pair(value: object) -> tuple[str, str]:
    items = _items(value)
    if len(items) != 2:
        raise EntryError(f"expected a pair of strings, got {value!r:.40}")
    return _string(items[0]), _string(items[1])


def _address(value: object) -> tuple[str, int] | None:
    if value is None:
        return None
    items = _items(value)
    if len(items) != 2 or not isinstance(items[1], int):
        raise EntryError(f"expected (host, port), got {value!r:.40}")
    return _string(items[0]), items[1]
