"""Session tags, and the room's index of them that a tagged broadcast reads.

A session's tags (`SessionTags`, what ``Session.tags`` is) are strings its room can
broadcast to (``room.broadcast(msg, tags={"admins"})``). The room keeps an index tag ->
sessions (`TagIndex`), updated as tags are added or removed and as sessions join and
leave, so a tagged broadcast costs per tagged recipient, not per member of the room.
Tags live where the session's connection is: they are not stored, and a resumed session
starts without any (``on_connect`` runs again and can set them from ``data``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSet
from typing import Generic, Protocol, TypeVar, final

__all__ = ["SessionTags", "TagIndex", "check_tags_argument"]


class _Member(Protocol):
    @property
    def id(self) -> str: ...


MemberT = TypeVar("MemberT", bound=_Member)


@final
class TagIndex(Generic[MemberT]):
    """A room's tagged sessions: tag -> session id -> session (insertion order)."""

    __slots__ = ("_by_tag",)

    def __init__(self) -> None:
        self._by_tag: dict[str, dict[str, MemberT]] = {}

    def add(self, member: MemberT, tag: str) -> None:
        self._by_tag.setdefault(tag, {})[member.id] = member

    def discard(self, member: MemberT, tag: str) -> None:
        members = self._by_tag.get(tag)
        if members is not None and members.get(member.id) is member:
            del members[member.id]
            if not members:
                del self._by_tag[tag]

    def tagged(self, tag: str) -> Iterable[MemberT]:
        """The sessions tagged ``tag``."""
        return self._by_tag.get(tag, {}).values()

    def any_of(self, tags: Iterable[str]) -> Iterable[MemberT]:
        """The sessions tagged with any of ``tags``, each once."""
        by_tag = self._by_tag
        found: dict[str, MemberT] | None = None
        first: dict[str, MemberT] | None = None
        for tag in tags:
            members = by_tag.get(tag)
            if not members:
                continue
            if first is None:
                first = members  # one tag (the common case): no copy
            else:
                if found is None:
                    found = dict(first)
                found.update(members)
        if found is not None:
            return found.values()
        return first.values() if first is not None else ()


@final
class SessionTags(MutableSet[str], Generic[MemberT]):
    """The tags of one session: a mutable set of str, bounded, indexed by its room.

    Raises `TypeError` for a tag that is not a str and `ValueError` for an empty one,
    one longer than ``RoomsConfig.max_tag_length``, or one more than
    ``RoomsConfig.max_tags_per_session``; the tags are then as they were.
    """

    __slots__ = ("_index", "_member", "_tags", "max_length", "max_tags")

    def __init__(self, member: MemberT, max_tags: int, max_length: int) -> None:
        self._member = member
        #: Made at the first tag: most sessions have none, and an empty set is 216 bytes.
        self._tags: set[str] | None = None
        #: The room's index while the session is in the room (None: not in one).
        self._index: TagIndex[MemberT] | None = None
        self.max_tags = max_tags
        self.max_length = max_length

    def __contains__(self, tag: object) -> bool:
        return self._tags is not None and tag in self._tags

    def __iter__(self) -> Iterator[str]:
        return iter(self._tags or ())

    def __len__(self) -> int:
        return len(self._tags or ())

    def __repr__(self) -> str:
        return f"SessionTags({sorted(self._tags or ())!r})"

    def add(self, value: str) -> None:
        """Tag the session with ``value`` (nothing if it has it already)."""
        if value in self:
            return
        self._check(value)
        if len(self) >= self.max_tags:
            raise ValueError(
                f"a session has at most {self.max_tags} tags "
                f"(RoomsConfig.max_tags_per_session): cannot add {value[:40]!r}"
            )
        if self._tags is None:
            self._tags = set()
        self._tags.add(value)
        if self._index is not None:
            self._index.add(self._member, value)

    def discard(self, value: str) -> None:
        """Remove the tag ``value`` if the session has it."""
        if self._tags is not None and value in self._tags:
            self._tags.remove(value)
            if self._index is not None:
                self._index.discard(self._member, value)

    def replace(self, tags: Iterable[str]) -> None:
        """Make ``tags`` the session's tags, all checked first (on error nothing changes)."""
        wanted = set(check_tags_argument(tags, "Session.tags"))
        for tag in wanted:
            self._check(tag)
        if len(wanted) > self.max_tags:
            raise ValueError(
                f"a session has at most {self.max_tags} tags "
                f"(RoomsConfig.max_tags_per_session), got {len(wanted)}"
            )
        current = frozenset(self._tags or ())
        for tag in current - wanted:
            self.discard(tag)
        for tag in wanted - current:
            self.add(tag)

    def _check(self, value: object) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a tag must be a str, got {type(value).__name__}")
        if not value:
            raise ValueError("a tag must not be empty")
        if len(value) > self.max_length:
            raise ValueError(
                f"a tag is at most {self.max_length} characters "
                f"(RoomsConfig.max_tag_length), got {len(value)}: {value[:40]!r}..."
            )

    def join(self, index: TagIndex[MemberT]) -> None:
        """The session joined a room: index its tags there."""
        self._index = index
        for tag in self._tags or ():
            index.add(self._member, tag)

    def leave(self) -> None:
        """The session left its room: take its tags out of the index (it keeps them)."""
        index, self._index = self._index, None
        if index is not None:
            for tag in self._tags or ():
                index.discard(self._member, tag)


def check_tags_argument(tags: Iterable[str], where: str) -> Iterable[str]:
    """``tags`` if it is a collection of tags, not one str (whose letters are not tags)."""
    if isinstance(tags, str):
        raise TypeError(f"{where} takes a collection of tags, not a str: use {{{tags[:40]!r}}}")
    return tags
