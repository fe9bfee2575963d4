"""Grouped FRAMES entries: an owner's frames for every session relayed from one node. No I/O.

A broadcast puts one `Frame` on the queue of each session of the room; the frames of
the sessions relayed from one node are gathered into that node's open `FrameGroup`,
which the link seals into one entry when it next writes, or before any other entry to
that node (so each relay's entries stay in order). So a broadcast costs one entry per
relaying node, not one per relayed session. The entry lists the relays it concerns,
each with its seq (a lost entry is a gap in each of them), then the frames, each for
every relay listed or for those it names by index::

    [FRAMES, source, "", 0, [[relay, seq], ...], [[opcode, payload, policy, key, targets], ...]]

A frame handed for a relay joins the group's item of that same frame when everything
already grouped for the relay comes before that item: that is the fan-out loop handing
one frame to each recipient in turn, and the writers of several sessions handing the
same batch. Anything else starts a new item, so every relay's frames keep their order.

``policy`` and ``key`` are the frame's delivery policy (`trio_rooms._delivery`), so the
client's node applies it in its own queue. A coalescing key is an object of the owner:
the entry carries a number instead (`KeyNumbers`), the same for equal keys while it is
remembered and never given to another key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, final

from .._core.outbound import BINARY, TEXT, Frame
from .._delivery import COALESCE, DISCONNECT, DROP_OLDEST
from ._relay_entries import FRAMES, EntryError, encode

if TYPE_CHECKING:
    from ._relay_link import RelayEnd

__all__ = ["FrameGroup", "Grouped", "KeyNumbers", "grouped"]

_POLICIES: Final = frozenset({DISCONNECT, DROP_OLDEST, COALESCE})


@final
class KeyNumbers:
    """Numbers for the coalescing keys of one node's frames, as other nodes see them.

    Equal keys get the same number while it is remembered (up to ``limit`` keys, then
    all are forgotten at once); a number is never given to another key, so forgetting
    only means that a frame may not replace an older one of its key over there.
    """

    __slots__ = ("_limit", "_next", "_numbers")

    def __init__(self, limit: int = 65_536) -> None:
        self._limit = limit
        self._numbers: dict[object, int] = {}
        self._next = 1

    def number(self, frame: Frame) -> int:
        """``frame``'s key's number; 0 for a frame that does not coalesce."""
        if frame.policy != COALESCE:
            return 0
        numbers = self._numbers
        found = numbers.get(frame.key)
        if found is not None:
            return found
        if len(numbers) >= self._limit:
            numbers.clear()
        number = numbers[frame.key] = self._next
        self._next += 1
        return number


@final
class FrameGroup:
    """The frames waiting to go to one node, for the relays they belong to, in order."""

    __slots__ = ("_by_frame", "_ends", "_index", "_items", "_last")

    def __init__(self) -> None:
        #: The relays with frames here, in the order they first had one.
        self._ends: list[RelayEnd] = []
        self._index: dict[str, int] = {}
        #: For each relay (by index), the item its last frame is in.
        self._last: list[int] = []
        #: Each frame and the relays (by index) it is for.
        self._items: list[tuple[Frame, list[int]]] = []
        #: The latest item of each frame object (the items hold the frames: ids stay valid).
        self._by_frame: dict[int, int] = {}

    def __len__(self) -> int:
        """Frames grouped (a frame for many relays counts once)."""
        return len(self._items)

    def add(self, end: RelayEnd, frames: Sequence[Frame]) -> None:
        """Group ``frames`` for ``end``'s relay, after what is grouped for it already."""
        relay = self._index.get(end.relay)
        if relay is None:
            relay = self._index[end.relay] = len(self._ends)
            self._ends.append(end)
            self._last.append(-1)
        items, by_frame = self._items, self._by_frame
        last = self._last[relay]
        for frame in frames:
            item = by_frame.get(id(frame))
            if item is not None and item > last:
                items[item][1].append(relay)
            else:
                item = by_frame[id(frame)] = len(items)
                items.append((frame, [relay]))
            last = item
        self._last[relay] = last

    def seal(self, source: str, keys: KeyNumbers) -> bytes:
        """The entry of everything grouped, each relay's seq counted; the group is spent."""
        relays: list[tuple[str, int]] = []
        for end in self._ends:
            end.sent += 1
            relays.append((end.relay, end.sent))
        everyone = len(relays)
        items = [
            (
                frame.opcode,
                frame.payload,
                frame.policy,
                keys.number(frame),
                None if len(targets) == everyone else targets,
            )
            for frame, targets in self._items
        ]
        return encode(FRAMES, source, "", 0, relays, items)


@final
class Grouped:
    """A FRAMES entry as read: each relay's id and seq, and each relay's frames."""

    __slots__ = ("frames", "relays")

    def __init__(self, relays: list[tuple[str, int]], frames: list[list[Frame]]) -> None:
        self.relays = relays
        #: The frames of each relay, by its index: one `Frame` object per item, shared.
        self.frames = frames


def grouped(source: str, body: Sequence[object]) -> Grouped:
    """What a FRAMES entry of node ``source`` carries for each relay.

    A coalescing key becomes ``(source, number)``: numbers of two nodes never match.

    Raises:
        EntryError: ``body`` is not a FRAMES entry's.
    """
    if len(body) != 2:
        raise EntryError(f"a FRAMES entry has 2 fields, got {len(body)}")
    relays = [_relay(item) for item in _items(body[0])]
    if not relays:
        raise EntryError("a FRAMES entry is for at least one relay")
    everyone: list[Frame] = []
    each: list[list[Frame]] | None = None
    for item in _items(body[1]):
        frame, targets = _frame(source, item, len(relays))
        if targets is None and each is None:
            everyone.append(frame)
            continue
        if each is None:
            each = [list(everyone) for _ in relays]
        for target in targets if targets is not None else range(len(relays)):
            each[target].append(frame)
    return Grouped(relays, each if each is not None else [everyone] * len(relays))


def _items(value: object) -> tuple[object, ...]:
    if not isinstance(value, tuple):
        raise EntryError(f"expected an array, got {value!r:.40}")
    return value  # pyright: ignore[reportUnknownVariableType]


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EntryError(f"expected a count, got {value!r:.40}")
    return value


def _relay(value: object) -> tuple[str, int]:
    fields = _items(value)
    if len(fields) != 2 or not isinstance(fields[0], str):
        raise EntryError(f"expected a relay and its seq, got {value!r:.40}")
    return fields[0], _count(fields[1])


def _frame(source: str, value: object, relays: int) -> tuple[Frame, tuple[int, ...] | None]:
    fields = _items(value)
    if len(fields) != 5:
        raise EntryError(f"a frame of a FRAMES entry has 5 fields, got {len(fields)}")
    opcode, payload, policy, number, targets = fields
    if opcode not in (TEXT, BINARY) or not isinstance(payload, bytes):
        raise EntryError(f"expected a text or binary frame, got opcode {opcode!r:.20}")
    if policy not in _POLICIES:
        raise EntryError(f"expected a delivery policy's code, got {policy!r:.20}")
    number = _count(number)
    key = (source, number) if number else None
    frame = Frame(opcode, payload, 0, _count(policy), key)
    if targets is None:
        return frame, None
    indices = tuple(_count(target) for target in _items(targets))
    if any(index >= relays for index in indices):
        raise EntryError(f"a frame is for relay {max(indices)} of {relays}")
    return frame, indices
