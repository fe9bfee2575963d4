"""A room for the tags and delivery-policy tests: tagged sessions, a feed of updates."""

from __future__ import annotations

from typing import assert_never

import attrs

from trio_rooms import Coalesce, ConnectRequest, DropOldest, Message, Room, Session


@attrs.frozen
class SetTags(Message):
    """Replace the session's tags; answered with `TagsSet`, or `Refused` past the bounds."""

    tags: list[str]


@attrs.frozen
class Announce(Message):
    """Broadcast ``text`` from the session, to ``tags`` (None: everyone) but ``exclude``."""

    text: str
    tags: list[str] | None = None
    exclude: list[str] = attrs.field(factory=list[str])
    exclude_self: bool = False


@attrs.frozen
class TagsSet(Message):
    session_id: str
    tags: list[str]


@attrs.frozen
class Refused(Message):
    reason: str


@attrs.frozen
class Said(Message):
    text: str


@attrs.frozen
class Update(Message):
    """The latest value of one key: only the newest per key waits in a slow queue."""

    delivery = Coalesce("key")
    key: str
    value: int
    pad: str = ""


@attrs.frozen
class Tick(Message):
    """One tick of a feed: a slow queue drops the oldest."""

    delivery = DropOldest()
    n: int
    pad: str = ""


ServerMsg = TagsSet | Refused | Said | Update | Tick
ClientMsg = SetTags | Announce
SERVER = (TagsSet, Refused, Said, Update, Tick)
CLIENT = (SetTags, Announce)


class TagSession(Session[None, ServerMsg, ClientMsg]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        wanted = self.request.query.get("tags", "")
        self._set([tag for tag in wanted.split(",") if tag])

    async def on_message(self, message: ClientMsg) -> None:
        match message:
            case SetTags(tags=tags):
                self._set(tags)
            case Announce(text=text, tags=tags, exclude=exclude, exclude_self=exclude_self):
                self.broadcast(Said(text), tags=tags, exclude=exclude, exclude_self=exclude_self)
            case _:
                assert_never(message)

    def _set(self, tags: list[str]) -> None:
        try:
            self.tags = tags
        except ValueError as exc:
            self.send(Refused(str(exc)))
        else:
            self.send(TagsSet(self.id, sorted(self.tags)))


class TagRoom(Room[TagSession]):
    pass
