"""Grouped FRAMES entries: an owner's frames for every session relayed from one node. No I/O.

A broadcast puts one `Frame` on the queue of each session of the room; the frames of
the sessions relayed from one node are gathered into that node's open `FrameGroup`,
which the link seals into one entry when it next writes, or before any other entry to
that node (so each relay's entries stay in order). So a broadcast costs one entry per
relaying node, not one per relayed session. The entry lists the relays it concerns,
each with its seq (a lost entry is a gap in each of them) and the order of its frames,
then each distinct frame once::

    [FRAMES, source, "", 0, [[relay, seq, order], ...], [[opcode, payload, policy, key], ...]]

``order`` is None when the relay gets every frame of the entry in the entry's order (a
broadcast, or a burst of them), else the indices of its frames, in its order: its own
frames and the room's broadcasts interleave as the owner sent them.

``policy`` and ``key`` are the frame's delivery policy (`trio_rooms._delivery`), so the
client's node applies it in its own queue. A coalescing key is an object of the owner:
the entry carries a number instead (`KeyNumbers`), the same for equal keys while it is
remembered and never given to another key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, cast, final

from .._core.outbound import BINARY, TEXT, Frame
from .._delivery import COALESCE, DISCONNECT, DROP_OLDEST
from ._relay_end import RelayEnd
from ._relay_entries import FRAMES, EntryError, encode

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
    """The frames waiting to go to one node, each once, and each relay's order of them."""

    __slots__ = ("_by_frame", "_frames", "_relays", "_unordered")

    def __init__(self) -> None:
        #: The relays with frames here, in the order they first had one, and the indices
        #: of each one's frames, in its order (a pair, not an object: one per reply).
        self._relays: dict[str, tuple[RelayEnd, list[int]]] = {}
        #: The relays some of whose indices are not larger than the one before.
        self._unordered: set[str] = set()
        self._frames: list[Frame] = []
        #: Each frame object's index (``_frames`` holds them: their ids stay valid).
        self._by_frame: dict[int, int] = {}

    def __len__(self) -> int:
        """Frames grouped (a frame for many relays counts once)."""
        return len(self._frames)

    def add(self, end: RelayEnd, frames: Sequence[Frame]) -> int:
        """Group ``frames`` for ``end``'s relay, after what is grouped for it already;
        return how many of them were not grouped yet (for another relay)."""
        grouped, by_frame = self._frames, self._by_frame
        if not grouped and len(frames) == 1:
            # A group's first frame (a reply, or a broadcast's first relay): its index is
            # 0, in order, and there is nothing to look up: three calls less.
            frame = frames[0]
            grouped.append(frame)
            by_frame[id(frame)] = 0
            self._relays[end.relay] = (end, [0])
            return 1
        relay = self._relays.get(end.relay)
        if relay is None:
            order: list[int] = []
            self._relays[end.relay] = (end, order)
        else:
            order = relay[1]
        added = 0
        for frame in frames:
            identity = id(frame)
            index = by_frame.get(identity)
            if index is None:
                # A new frame's index is above every grouped one's: in order, unchecked.
                index = by_frame[identity] = len(grouped)
                grouped.append(frame)
                added += 1
            elif order and index <= order[-1]:
                self._unordered.add(end.relay)
            order.append(index)
        return added

    def seal(self, source: str, keys: KeyNumbers) -> bytes:
        """The entry of everything grouped, each relay's seq counted; the group is spent."""
        count = len(self._frames)
        relays: list[tuple[str, int, list[int] | None]] = []
        unordered = self._unordered
        for end, order in self._relays.values():
            end.sent += 1
            every = len(order) == count and end.relay not in unordered
            relays.append((end.relay, end.sent, None if every else order))
        # (`KeyNumbers.number` only for a coalescing frame: a call less per frame.)
        frames = [
            (frame.opcode, frame.payload, frame.policy, keys.number(frame))
            if frame.policy == COALESCE
            else (frame.opcode, frame.payload, frame.policy, 0)
            for frame in self._frames
        ]
        return encode(FRAMES, source, "", 0, relays, frames)


@final
class Grouped:
    """A FRAMES entry as read: each relay's id and seq, and each relay's frames."""

    __slots__ = ("frames", "relays")

    def __init__(self, relays: list[tuple[str, int]], frames: list[list[Frame]]) -> None:
        self.relays = relays
        #: The frames of each relay, by its index: one `Frame` object per frame, shared.
        self.frames = frames


def grouped(source: str, body: Sequence[object]) -> Grouped:
    """What a FRAMES entry of node ``source`` carries for each relay.

    A coalescing key becomes ``(source, number)``: numbers of two nodes never match.

    Raises:
        EntryError: ``body`` is not a FRAMES entry's.
    """
    if len(body) != 2:
        raise EntryError(f"a FRAMES entry has 2 fields, got {len(body)}")
    # The checks are inline (no helper call per field, frame or index): every relayed
    # frame comes here, and a relay given its own frames has an order of them.
    frames: list[Frame] = []
    for value in _items(body[1]):
        if type(value) is not tuple or len(value) != 4:  # pyright: ignore[reportUnknownArgumentType]
            raise EntryError(f"a frame of a FRAMES entry is an array of 4, got {value!r:.40}")
        if TYPE_CHECKING:  # (not at run time: a `cast` is a call, and this is per frame)
            value = cast("tuple[object, ...]", value)
        opcode, payload, policy, number = value
        if type(opcode) is not int or (opcode != TEXT and opcode != BINARY):
            raise EntryError(f"expected a text or binary frame, got opcode {opcode!r:.20}")
        if type(payload) is not bytes:
            raise EntryError(f"expected a frame's payload, got {payload!r:.20}")
        if type(policy) is not int or policy not in _POLICIES:
            raise EntryError(f"expected a delivery policy's code, got {policy!r:.20}")
        if number == 0 and type(number) is int:
            frames.append(Frame(opcode, payload, 0, policy))
        else:
            frames.append(Frame(opcode, payload, 0, policy, (source, _count(number))))
    count = len(frames)
    relays: list[tuple[str, int]] = []
    each: list[list[Frame]] = []
    for item in _items(body[0]):
        if type(item) is not tuple or len(item) != 3:  # pyright: ignore[reportUnknownArgumentType]
            raise EntryError(f"expected a relay, its seq and its order, got {item!r:.40}")
        if TYPE_CHECKING:  # (not at run time: a `cast` is a call, and this is per relay)
            item = cast("tuple[object, ...]", item)
        relay, seq, order = item
        if type(relay) is not str or type(seq) is not int or seq < 0:
            raise EntryError(f"expected a relay and its seq, got {item!r:.40}")
        relays.append((relay, seq))
        if order is None:
            each.append(frames)
            continue
        if type(order) is not tuple:
            raise EntryError(f"expected a relay's order, got {order!r:.40}")
        if TYPE_CHECKING:
            order = cast("tuple[object, ...]", order)
        if len(order) == 1:
            # One frame of its own (a reply, as each client of an echo gets): no loop.
            index = order[0]
            if type(index) is not int or not 0 <= index < count:
                raise EntryError(f"a relay's frame {index!r:.20} of {count}")
            each.append([frames[index]])
            continue
        picked: list[Frame] = []
        for index in order:
            # (`int` exactly: a bool is not an index.)
            if type(index) is not int or not 0 <= index < count:
                raise EntryError(f"a relay's frame {index!r:.20} of {count}")
            picked.append(frames[index])
        each.append(picked)
    if not relays:
        raise EntryError("a FRAMES entry is for at least one relay")
    return Grouped(relays, each)


def _items(value: object) -> tuple[object, ...]:
    if not isinstance(value, tuple):
        raise EntryError(f"expected an array, got {value!r:.40}")
    return value  # pyright: ignore[reportUnknownVariableType]


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EntryError(f"expected a count, got {value!r:.40}")
    return value
