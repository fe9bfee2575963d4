"""Building a codec checks its classes once, with clear TypeErrors."""

from __future__ import annotations

import attrs
import pytest
from codec_messages import Cat, Circle, Dog, Item, SendChat, SetName

from trio_rooms._message import Message
from trio_rooms.codec import JsonCodec, MsgpackCodec, WireFormat, make_codec


class NotAttrs(Message):
    pass


@attrs.frozen
class NotAMessage:
    x: int


@attrs.frozen
class AlsoSendChat(Message):
    tag = "sendChat"
    text: str


@attrs.frozen
class WithBytearray(Message):
    data: bytearray


@attrs.frozen
class WithSet(Message):
    ids: set[int]


@attrs.frozen
class IntKeys(Message):
    table: dict[int, str]


@attrs.frozen
class OtherCircle:
    radius: float
    label: str = ""


@attrs.frozen
class Ambiguous(Message):
    value: Circle | OtherCircle


@attrs.frozen
class Distinct(Message):
    value: Cat | Dog | Item


@attrs.frozen
class Clash(Message):
    user_id: str
    userId: str  # the point of the test: clashes with user_id once renamed


@attrs.frozen
class TypeField(Message):
    type: str


@pytest.mark.parametrize("codec_type", [JsonCodec, MsgpackCodec])
def test_rejects_classes_that_are_not_messages(codec_type: type[JsonCodec[Message]]) -> None:
    """Only attrs classes deriving from Message are accepted."""
    expected = "is not a message class: expected an attrs class deriving from trio_rooms.Message"
    for bad in (NotAttrs, NotAMessage, int):
        with pytest.raises(TypeError, match=expected):
            codec_type(bad)  # pyright: ignore[reportArgumentType]  # on purpose


def test_rejects_duplicate_tags() -> None:
    """Two classes with one tag cannot be told apart."""
    with pytest.raises(TypeError, match="SendChat and AlsoSendChat have the same tag 'sendChat'"):
        JsonCodec(SendChat, AlsoSendChat)


def test_rejects_no_classes() -> None:
    """A codec needs at least one message class."""
    with pytest.raises(TypeError, match="at least one message class"):
        JsonCodec()


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (WithBytearray, "unsupported type on the wire: <class 'bytearray'>"),
        (WithSet, r"unsupported type on the wire: set\[int\]"),
        (IntKeys, "keys must be str on the wire"),
        (Ambiguous, "cannot tell apart Circle, OtherCircle on the wire: no unique required field"),
        (Clash, "fields 'user_id' and 'userId' are both named 'userId' on the wire"),
        (TypeField, "field 'type' is named 'type' on the wire, which clashes with the tag"),
    ],
)
def test_rejects_types_the_wire_cannot_carry(cls: type[Message], message: str) -> None:
    """Unsupported or ambiguous field types fail at construction, not at decode time."""
    with pytest.raises(TypeError, match=message):
        JsonCodec(cls)


def test_union_members_told_apart_by_literal_or_key() -> None:
    """A union mixing literal-tagged and key-distinguished classes is accepted."""
    codec = JsonCodec(Distinct)
    assert codec.decode('{"type":"distinct","value":{"id":1}}') == Distinct(Item(id=1))
    assert codec.decode('{"type":"distinct","value":{"kind":"dog","goodBoy":true}}') == Distinct(
        Dog(kind="dog", good_boy=True)
    )


def test_camel_case_false_avoids_the_clash() -> None:
    """Names only clash after renaming."""
    assert JsonCodec(Clash, camel_case=False).tags == ("clash",)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_make_codec(fmt: WireFormat) -> None:
    """make_codec picks the codec class from the wire format."""
    codec = make_codec(fmt, SendChat, SetName)
    assert codec.format == fmt
    assert isinstance(codec, JsonCodec if fmt == "json" else MsgpackCodec)


def test_make_codec_rejects_unknown_format() -> None:
    """An unknown format is a ValueError naming the known ones."""
    with pytest.raises(ValueError, match="unknown wire format 'xml': expected 'json' or 'msgpack'"):
        make_codec("xml", SendChat)  # pyright: ignore[reportArgumentType]  # on purpose
