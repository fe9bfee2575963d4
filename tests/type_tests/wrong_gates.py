"""The room's gates and storage are used the async way, and transactions hand back nothing."""

from __future__ import annotations

from .right_quickstart import ChatRoom


async def critical_sections(room: ChatRoom) -> None:
    async with room.exclusive():
        await room.storage.put("n", 1)
    async with room.storage.transaction():
        await room.storage.put("a", 1)
    async with room.unlocked():
        pass
    with room.exclusive():  # expect: reportGeneralTypeIssues, reportGeneralTypeIssues
        pass
    with room.storage.transaction():  # expect: reportGeneralTypeIssues, reportGeneralTypeIssues
        pass
    async with room.storage.transaction() as nothing:
        nothing.commit()  # expect: reportAttributeAccessIssue, reportUnknownMemberType
    room.storage.flush()  # expect: reportUnusedCoroutine
    count: int | None = await room.storage.get("n", str)  # expect: reportAssignmentType
    del count
