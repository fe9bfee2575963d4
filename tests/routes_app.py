"""A room with HTTP routes (the seed's ``/info`` and ``/broadcast``), for the route tests."""

from __future__ import annotations

import attrs

from trio_rooms import ConnectRequest, HttpRequest, Message, Response, Room, Session, route


@attrs.frozen
class Say(Message):
    text: str


@attrs.frozen
class Admin(Message):
    message: str


@attrs.define
class MemberData:
    name: str


class MemberSession(Session[MemberData, Admin, Say]):
    async def create_data(self, request: ConnectRequest) -> MemberData:
        return MemberData(name=request.query.get("name", "anon"))

    async def on_connect(self) -> None:
        self.send(Admin(message=f"welcome {self.data.name}"))

    async def on_message(self, message: Say) -> None:
        self.broadcast(Admin(message=message.text))


@attrs.frozen
class SessionInfo:
    id: str
    data: MemberData


@attrs.frozen
class RoomInfo:
    session_count: int
    sessions: list[SessionInfo]


@attrs.frozen
class BroadcastBody:
    message: str
    urgent_level: int | None = None


@attrs.frozen
class Ok:
    success: bool


class AdminRoom(Room[MemberSession]):
    @route.post("/info")
    async def info(self, request: HttpRequest) -> RoomInfo:
        sessions = [SessionInfo(id=s.id, data=s.data) for s in self.sessions.values()]
        return RoomInfo(session_count=len(sessions), sessions=sessions)

    @route.post("/broadcast")
    async def broadcast_admin(self, request: HttpRequest, body: BroadcastBody) -> Ok:
        self.broadcast(Admin(message=body.message))
        return Ok(success=True)

    @route.get("/echo")
    @route.put("/echo")
    async def echo(self, request: HttpRequest) -> Response:
        text = f"{request.method} {request.path} {request.query.get('x')} {request.header('X-Tag')}"
        return Response.text(201, text)

    @route.get("/boom")
    async def boom(self, request: HttpRequest) -> Ok:
        raise RuntimeError("route failed")
