"""Message classes shared by the codec tests."""

from __future__ import annotations

import enum
from typing import Literal

import attrs

from trio_rooms._message import Message


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Point:
    x_pos: float
    y_pos: float


@attrs.frozen
class Item:
    id: int
    label: str | None = None


@attrs.frozen
class Cat:
    kind: Literal["cat"]
    lives: int


@attrs.frozen
class Dog:
    kind: Literal["dog"]
    good_boy: bool


@attrs.frozen
class Circle:
    radius: float


@attrs.frozen
class Square:
    side_len: float


def _no_nodes() -> list[Node]:
    return []


@attrs.frozen
class Node:
    value: int
    children: list[Node] = attrs.field(factory=_no_nodes)


@attrs.frozen
class SendChat(Message):
    text: str


@attrs.frozen
class SetName(Message):
    name: str


@attrs.frozen
class UserLeft(Message):
    user_id: str
    reason: str | None = None


@attrs.frozen
class Order(Message):
    user_id: str
    items: list[Item]
    note: str | None
    scores: dict[str, int] = attrs.field(factory=dict[str, int])
    ratio: float = 1.0
    urgent: bool = False


@attrs.frozen
class Everything(Message):
    tag = "everything!"

    big_int: int
    ratio: float
    flag: bool
    title: str
    items: list[Item]
    coords: tuple[int, ...]
    pair: tuple[int, str]
    scores: dict[str, int]
    origin: Point
    maybe_point: Point | None
    mode: Literal["fast", "slow"]
    color: Color
    level: Level
    pet: Cat | Dog
    shape: Circle | Square | None
    nickname: str | None = None
    count: int = 0
    labels: tuple[str, ...] = ()
    notes: list[str] = attrs.field(factory=list[str])
    number: int | str = 0


@attrs.frozen
class TreeMsg(Message):
    tree: Node
