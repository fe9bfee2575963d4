"""Route handlers whose signature or return type the route decorators must reject."""

from __future__ import annotations

import attrs

from trio_rooms import HttpRequest, Response, Room, route

from .right_quickstart import ChatRoom, ChatSession


@attrs.frozen
class Ok:
    success: bool


@attrs.frozen
class Body:
    message: str


class NotAttrs:
    pass


class RoutedRoom(Room[ChatSession]):
    @route.get("/fine")
    async def fine(self, request: HttpRequest) -> Ok:
        return Ok(success=True)

    @route.post("/fine-with-body")
    async def fine_with_body(self, request: HttpRequest, body: Body) -> Ok | Response:
        return Ok(success=body.message == "hi")

    # expect: reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator
    @route.get("/no-request")
    async def no_request(self) -> Ok:
        return Ok(success=True)

    # expect: reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator
    @route.get("/sync")
    def sync(self, request: HttpRequest) -> Ok:
        return Ok(success=True)

    # expect: reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator
    @route.get("/returns-str")
    async def returns_str(self, request: HttpRequest) -> str:
        return "no"

    # expect: reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator
    @route.post("/plain-body")
    async def plain_body(self, request: HttpRequest, body: NotAttrs) -> Ok:
        return Ok(success=True)

    # expect: reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator
    @route.post("/request-not-first")
    async def request_not_first(self, body: Body, request: HttpRequest) -> Ok:
        return Ok(success=True)


async def call(room: RoutedRoom, chat: ChatRoom, request: HttpRequest) -> None:
    ok: Ok = await room.fine(request)
    print(ok)
    await room.fine_with_body(request, Body(message="hi"))
    await room.fine_with_body(request, Ok(success=True))  # expect: reportArgumentType
    wrong: Response = await room.fine(request)  # expect: reportAssignmentType
    print(wrong, chat)
