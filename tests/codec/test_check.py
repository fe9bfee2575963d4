"""``MessageCheck`` refuses a message whose fields do not match their annotations."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

import attrs
import pytest
from codec_messages import (
    Cat,
    Circle,
    Color,
    Dog,
    Everything,
    Item,
    Level,
    Node,
    Point,
    SendChat,
    Square,
    TreeMsg,
    UserLeft,
)

import trio_rooms
from trio_rooms import Message
from trio_rooms.codec import MessageCheck

T = TypeVar("T")

GOOD = Everything(
    big_int=1,
    ratio=2,  # an int is a float
    flag=True,
    title="t",
    items=[Item(1, "a"), Item(2)],
    coords=(1, 2),
    pair=(1, "a"),
    scores={"a": 1},
    origin=Point(1.0, 2.0),
    maybe_point=None,
    mode="fast",
    color=Color.RED,
    level=Level.LOW,
    pet=Dog("dog", good_boy=True),
    shape=Square(2.0),
)

check = MessageCheck(Everything, TreeMsg, UserLeft)


def made(cls: Callable[..., T], *args: object) -> T:
    """An instance built with arguments of the wrong types, on purpose."""
    return cls(*args)


def test_matching_messages_pass() -> None:
    """Messages whose every field matches go through, optional and default ones included."""
    check(GOOD)
    check(attrs.evolve(GOOD, maybe_point=Point(0, 0), shape=None, nickname="n", number="x"))
    check(TreeMsg(Node(1, [Node(2, [Node(3)])])))
    check(UserLeft(user_id="u"))


class Word(enum.StrEnum):
    HI = "hi"


def test_subclasses_of_scalars_pass() -> None:
    """A str enum member is a str on the wire, so it passes for one."""
    check(UserLeft(user_id=Word.HI))


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("big_int", "1", "Everything.big_int: expected int, got str @ $.bigInt"),
        ("big_int", True, "Everything.big_int: expected int, got bool @ $.bigInt"),
        ("ratio", "x", "Everything.ratio: expected float, got str @ $.ratio"),
        ("ratio", False, "Everything.ratio: expected float, got bool @ $.ratio"),
        ("flag", 1, "Everything.flag: expected bool, got int @ $.flag"),
        ("title", None, "Everything.title: expected str, got None @ $.title"),
        ("nickname", 5, "Everything.nickname: expected str or None, got int @ $.nickname"),
        ("mode", "medium", "Everything.mode: expected 'fast' or 'slow', got 'medium' @ $.mode"),
        ("mode", 3, "Everything.mode: expected 'fast' or 'slow', got int @ $.mode"),
        ("color", "red", "Everything.color: expected Color, got str @ $.color"),
        ("level", 1, "Everything.level: expected Level, got int @ $.level"),
        ("origin", (1, 2), "Everything.origin: expected Point, got tuple @ $.origin"),
        (
            "origin",
            made(Point, "x", 1),
            "Everything.origin.x_pos: expected float, got str @ $.origin.xPos",
        ),
        (
            "maybe_point",
            3,
            "Everything.maybe_point: expected Point or None, got int @ $.maybePoint",
        ),
        ("pet", Item(1), "Everything.pet: expected Cat or Dog, got Item @ $.pet"),
        ("pet", made(Cat, "dog", 1), "Everything.pet.kind: expected 'cat', got 'dog' @ $.pet.kind"),
        (
            "pet",
            made(Dog, "dog", 1),
            "Everything.pet.good_boy: expected bool, got int @ $.pet.goodBoy",
        ),
        (
            "shape",
            made(Circle, "r"),
            "Everything.shape.radius: expected float, got str @ $.shape.radius",
        ),
        ("number", [1], "Everything.number: expected int or str, got list @ $.number"),
        ("items", (Item(1),), "Everything.items: expected list, got tuple @ $.items"),
        ("items", [Item(1), 2], "Everything.items[1]: expected Item, got int @ $.items[1]"),
        (
            "items",
            [Item(1), made(Item, "2", 3)],
            "Everything.items[1].id: expected int, got str @ $.items[1].id; "
            "Everything.items[1].label: expected str or None, got int @ $.items[1].label",
        ),
        ("coords", [1, 2], "Everything.coords: expected tuple, got list @ $.coords"),
        ("labels", ("a", 1), "Everything.labels[1]: expected str, got int @ $.labels[1]"),
        ("pair", (1,), "Everything.pair: expected a tuple of 2, got tuple @ $.pair"),
        ("pair", (1, 2), "Everything.pair[1]: expected str, got int @ $.pair[1]"),
        ("scores", [("a", 1)], "Everything.scores: expected dict, got list @ $.scores"),
        ("scores", {"a": "1"}, "Everything.scores['a']: expected int, got str @ $.scores['a']"),
        ("scores", {1: 1}, "Everything.scores: expected str keys, got int @ $.scores"),
    ],
)
def test_each_field_kind_is_checked(field: str, value: object, error: str) -> None:
    """A wrong value of each kind of field is named with its Python and wire paths."""
    with pytest.raises(TypeError) as raised:
        check(attrs.evolve(GOOD, **{field: value}))
    assert str(raised.value) == error


def test_recursive_classes_are_checked_all_the_way_down() -> None:
    """A self-referencing class is checked at every depth."""
    with pytest.raises(TypeError) as raised:
        check(TreeMsg(Node(1, [Node(2, [Node("3")])])))  # pyright: ignore[reportArgumentType]
    assert str(raised.value) == (
        "TreeMsg.tree.children[0].children[0].value: expected int, got str "
        "@ $.tree.children[0].children[0].value"
    )


def test_every_mismatch_is_counted() -> None:
    """Up to three mismatches are shown, and how many more there are."""
    bad = attrs.evolve(GOOD, big_int="1", ratio="2", flag=None, title=4, mode="x")
    with pytest.raises(TypeError) as raised:
        check(bad)
    assert str(raised.value).endswith("@ $.flag; and 2 more")


def test_a_message_of_another_class_is_refused() -> None:
    """Only the given classes pass, whatever their fields."""
    with pytest.raises(TypeError, match="SendChat is not one of the messages Everything, "):
        check(SendChat(text="hi"))  # pyright: ignore[reportArgumentType] - on purpose


@attrs.frozen
class Said(Message):
    user_id: str
    text: str
    from_: str = attrs.field(default="", metadata=trio_rooms.wire("from"))


def test_paths_follow_the_wire_names() -> None:
    """Wire paths use the codec's names: chosen ones, lowerCamelCase or kept."""
    bad = Said(user_id=123, text=None, from_=1)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError) as raised:
        MessageCheck(Said)(bad)
    assert str(raised.value) == (
        "Said.user_id: expected str, got int @ $.userId; "
        "Said.text: expected str, got None @ $.text; "
        "Said.from_: expected str, got int @ $.from"
    )
    with pytest.raises(TypeError, match=r"@ \$\.user_id;"):
        MessageCheck(Said, camel_case=False)(bad)


@attrs.frozen
class Bad(Message):
    data: bytearray


def test_a_type_the_wire_cannot_carry_fails_when_built() -> None:
    """As for the codecs, an unsupported annotation is a TypeError up front."""
    with pytest.raises(TypeError, match="unsupported type on the wire: <class 'bytearray'>"):
        MessageCheck(Bad)
