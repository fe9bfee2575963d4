"""``ClientPresence``: the room's presences as the client was sent them, typed by a meta class.

The server sends a subscribed session ``{"$presence": {"state": ...}}`` and then
``{"$presence": {"joins": ..., "leaves": ...}}`` diffs (`trio_rooms._wire`). The
`PresenceTracker` applies them as the server's reference client does: a state replaces
everything, a diff removes its leaves by ref and then appends its joins. Each frame
becomes one `PresenceChanged`; for a state frame, what changed since the state the
client held (none before the first), so that a reconnect reports only real changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar, final

from .._errors import DecodeError
from .._wire import PresenceDiffFrame, PresenceMetas, PresenceStateFrame
from ..codec import WireFormat
from ..codec._values import ValueCodec
from ._events import PresenceChanged, PresenceMeta, PresenceMetasOf

__all__ = ["ClientPresence", "PresenceTracker"]

MetaT = TypeVar("MetaT")
MetaT_co = TypeVar("MetaT_co", covariant=True)


@final
class ClientPresence(Mapping[str, tuple[PresenceMeta[MetaT_co], ...]]):
    """The room's presences: key -> its presences, in the order they joined (a live view).

    Empty until the session subscribes (the server sends the state). After a reconnect
    it keeps the last state until the new connection's state replaces it.
    """

    __slots__ = ("_by_key",)

    def __init__(self, by_key: Mapping[str, Mapping[str, PresenceMeta[MetaT_co]]]) -> None:
        self._by_key = by_key

    def __getitem__(self, key: str) -> tuple[PresenceMeta[MetaT_co], ...]:
        return tuple(self._by_key[key].values())

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def count(self) -> int:
        """How many presences there are, over every key."""
        return sum(map(len, self._by_key.values()))

    def __repr__(self) -> str:
        return f"ClientPresence({dict(self)!r})"


@final
class PresenceTracker(Generic[MetaT]):
    """Applies a connection's ``$presence`` frames to the client's presences."""

    def __init__(self, meta_class: type[MetaT], wire: WireFormat, *, camel_case: bool) -> None:
        self._codec = ValueCodec(meta_class, wire, camel_case=camel_case, forbid_extra_keys=True)
        #: key -> ref -> presence; each key's in the order they joined.
        self._by_key: dict[str, dict[str, PresenceMeta[MetaT]]] = {}
        self.view: ClientPresence[MetaT] = ClientPresence(self._by_key)

    def apply(
        self, frame: PresenceStateFrame | PresenceDiffFrame, data: str | bytes
    ) -> PresenceChanged[MetaT]:
        """Apply ``frame`` (read from ``data``); what changed.

        Raises:
            DecodeError: A meta is not of the meta class; nothing was applied.
        """
        if isinstance(frame, PresenceStateFrame):
            new = self._decode(frame.state, data)
            held = {key: tuple(metas.values()) for key, metas in self._by_key.items()}
            joins, leaves = _minus(new, held), _minus(held, new)
            self._by_key.clear()
            for key, metas in new.items():
                self._by_key[key] = {meta.ref: meta for meta in metas}
            return PresenceChanged(joins, leaves, reset=True)
        joins, leaves = self._decode(frame.joins, data), self._decode(frame.leaves, data)
        left: dict[str, tuple[PresenceMeta[MetaT], ...]] = {}
        for key, metas in leaves.items():
            held = self._by_key.get(key, {})
            # The held presence (its meta as it joined), not the leave's copy.
            gone = tuple(held.pop(meta.ref) for meta in metas if meta.ref in held)
            if gone:
                left[key] = gone
            if not held:
                self._by_key.pop(key, None)
        joined: dict[str, tuple[PresenceMeta[MetaT], ...]] = {}
        for key, metas in joins.items():
            held = self._by_key.setdefault(key, {})
            fresh = tuple(meta for meta in metas if meta.ref not in held)
            held.update((meta.ref, meta) for meta in fresh)
            if fresh:
                joined[key] = fresh
            if not held:
                del self._by_key[key]
        return PresenceChanged(joined, left, reset=False)

    def _decode(self, metas: PresenceMetas, data: str | bytes) -> PresenceMetasOf[MetaT]:
        decoded: dict[str, tuple[PresenceMeta[MetaT], ...]] = {}
        for key, items in metas.items():
            try:
                decoded[key] = tuple(
                    PresenceMeta(item.ref, self._codec.from_wire(item.meta)) for item in items
                )
            except DecodeError as exc:
                raise DecodeError(f"presence of {key!r}: {exc}", frame=data) from exc
        return decoded


def _minus(these: PresenceMetasOf[MetaT], those: PresenceMetasOf[MetaT]) -> PresenceMetasOf[MetaT]:
    """The presences of ``these`` whose ref ``those`` lacks, by key."""
    refs = {meta.ref for metas in those.values() for meta in metas}
    result: dict[str, tuple[PresenceMeta[MetaT], ...]] = {}
    for key, metas in these.items():
        kept = tuple(meta for meta in metas if meta.ref not in refs)
        if kept:
            result[key] = kept
    return result
