"""A room whose messages and routes use every kind of field the codec supports.

``KindsRoom`` is the golden files' room; ``LooseRoom`` leaves out the one union
that cannot be described with ``forbid_extra_keys=False`` (told apart by keys).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal, NewType

import attrs

from trio_rooms import ConnectRequest, HttpRequest, Message, Response, Room, Session, route, wire

UserId = NewType("UserId", str)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mixed(enum.Enum):
    ONE = 1
    TWO = "two"


@attrs.frozen
class Point:
    x_pos: float
    y_pos: float


@attrs.frozen
class Cat:
    kind: Literal["cat"]
    lives: int


@attrs.frozen
class Dog:
    kind: Literal["dog", "puppy"]
    good_boy: bool


@attrs.frozen
class Circle:
    radius: float


@attrs.frozen
class Square:
    side_len: float
    label: str | None = None


def _no_nodes() -> list[Node]:
    return []


@attrs.frozen
class Node:
    value: int
    children: list[Node] = attrs.field(factory=_no_nodes)


class Outer:
    """Holds a second class named ``Point``: the export tells the two apart."""

    @attrs.frozen
    class Point:
        lat: float
        lon: float


@attrs.frozen
class ClientMessage:
    """Named like one of the module's own exports."""

    note: str


@attrs.frozen
class Scalars(Message):
    count: int
    ratio: float
    flag: bool
    title: str
    nothing: None
    user: UserId
    tagged: Annotated[int, "metadata the codec ignores"]
    from_: str = attrs.field(metadata=wire("from"))  # a wire name of its own


@attrs.frozen
class Optionals(Message):
    nickname: str | None
    reason: str | None = None
    retries: int | None = 3
    count: int = 0
    ratio: float = 1.5
    mode: Literal["fast", "slow"] = "fast"
    color: Color = Color.RED
    labels: tuple[str, ...] = ()
    notes: list[str] = attrs.field(factory=list[str])
    scores: dict[str, int] = attrs.field(factory=lambda: {"a": 1})
    origin: Point = Point(0.0, 0.0)
    double: int = attrs.field(default=attrs.Factory(lambda self: self.count * 2, takes_self=True))


@attrs.frozen
class Choices(Message):
    tag = "choices!"

    one: Literal["only"]
    several: Literal["a", 2, True, None]
    color: Color
    level: Level
    mixed: Mixed


@attrs.frozen
class Containers(Message):
    items: list[Point]
    coords: tuple[int, ...]
    pair: tuple[int, str]
    empty: tuple[()]
    seq: Sequence[bool]
    scores: dict[str, float]
    by_user: Mapping[UserId, list[int]]
    sparse: list[int | None]


@attrs.frozen
class Unions(Message):
    number: int | str
    amount: int | float
    either: float | bool
    pet: Cat | Dog
    maybe_point: Point | None
    anything: int | str | Point | list[str] | None = None


@attrs.frozen
class Place(Message):
    shape: Circle | Square


@attrs.frozen
class Tree(Message):
    root: Node
    places: list[Outer.Point]
    extra: ClientMessage | None = None


@attrs.frozen
class Echo(Message):
    """Sent by the server; nests a whole client message, without its tag."""

    scalars: Scalars
    history: list[Tree]


@attrs.frozen
class Attachment:
    """Holds bytes, in messages (a bin in msgpack) and in a route's body (always base64)."""

    name: str
    data: bytes
    chunks: list[bytes] = attrs.field(factory=list[bytes])


@attrs.frozen
class Blobs(Message):
    payload: bytes
    thumb: bytes | None
    files: list[Attachment]
    by_key: dict[str, bytes]
    code: bytes | int
    pair: tuple[bytes, str]
    empty: bytes = b""
    magic: bytes = b"\x89PNG"


@attrs.define
class KindsData:
    name: str


ClientKinds = Scalars | Optionals | Choices | Containers | Unions | Place | Tree | Blobs
LooseClientKinds = Scalars | Optionals | Choices | Containers | Unions | Tree | Blobs
ServerKinds = Echo | Tree | Optionals | Blobs


class KindsSession(Session[KindsData, ServerKinds, ClientKinds]):
    async def create_data(self, request: ConnectRequest) -> KindsData:
        return KindsData(name="kinds")

    async def on_message(self, message: ClientKinds) -> None:
        pass


class LooseSession(Session[KindsData, ServerKinds, LooseClientKinds]):
    async def create_data(self, request: ConnectRequest) -> KindsData:
        return KindsData(name="loose")

    async def on_message(self, message: LooseClientKinds) -> None:
        pass


@attrs.frozen
class Info:
    members: int
    names: list[str]


@attrs.frozen
class Moved:
    to: Point
    color: Color | None = None


@attrs.frozen
class Gone:
    reason: str


class KindsRoom(Room[KindsSession]):
    @route.get("/info")
    async def info(self, request: HttpRequest) -> Info:
        return Info(members=0, names=[])

    @route.post("/move/point")
    async def move(self, request: HttpRequest, body: Point) -> Moved | Gone:
        return Moved(to=body)

    @route.put("/move/point")
    async def move_or_text(self, request: HttpRequest, body: Point) -> Moved | Response:
        return Response.text(200, "moved")

    @route.delete("/")
    async def clear(self, request: HttpRequest) -> Response:
        return Response.text(204, "")

    @route.post("/attach")
    async def attach(self, request: HttpRequest, body: Attachment) -> Attachment:
        return body


class LooseRoom(Room[LooseSession]):
    @route.post("/move")
    async def move(self, request: HttpRequest, body: Moved) -> Info:
        return Info(members=0, names=[])
