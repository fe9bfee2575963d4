"""A field's own wire name (``trio_rooms.wire``) in both codecs, records and the field table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs
import msgpack
import orjson
import pytest

import trio_rooms
from trio_rooms import DecodeError, Message
from trio_rooms.codec import WireFormat, make_codec
from trio_rooms.codec._fields import wire_fields
from trio_rooms.codec._record import JsonRecords


@attrs.frozen
class Chat(Message):
    """The seed's ``{ type: 'chat'; message: string; from: string }``."""

    message: str
    from_: str = attrs.field(metadata=trio_rooms.wire("from"))


@attrs.frozen
class Place:
    zip_code: str = attrs.field(metadata=trio_rooms.wire("postal-code"))
    city_name: str | None = None


@attrs.frozen
class Red:
    kind_: Literal["red"] = attrs.field(metadata=trio_rooms.wire("type"))
    hue: int


@attrs.frozen
class Blue:
    kind_: Literal["blue"] = attrs.field(metadata=trio_rooms.wire("type"))
    depth: int


@attrs.frozen
class Moved(Message):
    user_id: str
    place: Place
    color: Red | Blue
    old_place: Place | None = attrs.field(default=None, metadata=trio_rooms.wire("was"))


def _frame(fmt: WireFormat, obj: Mapping[str, object]) -> bytes:
    return orjson.dumps(obj) if fmt == "json" else msgpack.packb(obj)


def _loads(fmt: WireFormat, data: bytes) -> object:
    return orjson.loads(data) if fmt == "json" else msgpack.unpackb(data)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_the_seed_message_is_writable(fmt: WireFormat) -> None:
    """``from`` goes on the wire for ``from_``, in both directions and both formats."""
    codec = make_codec(fmt, Chat)
    wire = {"type": "chat", "message": "hi", "from": "ann"}
    assert _loads(fmt, codec.encode(Chat(message="hi", from_="ann"))) == wire
    assert codec.decode(_frame(fmt, wire)) == Chat(message="hi", from_="ann")


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_the_python_name_is_an_unknown_key(fmt: WireFormat) -> None:
    """A renamed field is not found under its Python name, which is an extra key."""
    codec = make_codec(fmt, Chat)
    with pytest.raises(DecodeError) as error:
        codec.decode(_frame(fmt, {"type": "chat", "message": "hi", "from_": "ann"}))
    assert str(error.value) == "required field missing @ $.from; extra fields found (from_) @ $"


@pytest.mark.parametrize("camel_case", [True, False])
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_nested_names_and_unions(fmt: WireFormat, camel_case: bool) -> None:
    """Chosen names hold in nested classes, optionals and unions told apart by a renamed tag.

    The other fields follow ``camel_case``; a chosen name is used as it is.
    """
    codec = make_codec(fmt, Moved, camel_case=camel_case)
    message = Moved(
        user_id="u1",
        place=Place(zip_code="75001", city_name="Paris"),
        color=Blue(kind_="blue", depth=3),
        old_place=Place(zip_code="69001"),
    )
    user_id, city_name = ("userId", "cityName") if camel_case else ("user_id", "city_name")
    wire: dict[str, object] = {
        "type": "moved",
        user_id: "u1",
        "place": {"postal-code": "75001", city_name: "Paris"},
        "color": {"type": "blue", "depth": 3},
        "was": {"postal-code": "69001"},
    }
    assert _loads(fmt, codec.encode(message)) == wire
    assert codec.decode(_frame(fmt, wire)) == message
    wire["color"] = {"type": "green", "depth": 3}
    with pytest.raises(DecodeError, match=r"expected one of 'red', 'blue' @ \$\.color\.type"):
        codec.decode(_frame(fmt, wire))


def test_the_field_table_carries_the_chosen_name() -> None:
    """``wire_fields`` (what the schema export reads) gives each field its wire name."""
    assert [f.wire for f in wire_fields(Chat, camel_case=True)] == ["message", "from"]
    assert [f.wire for f in wire_fields(Place, camel_case=True)] == ["postal-code", "cityName"]
    assert [f.wire for f in wire_fields(Place, camel_case=False)] == ["postal-code", "city_name"]


def test_records_use_the_chosen_names() -> None:
    """HTTP bodies and results (plain attrs classes) follow the chosen names too."""
    records = JsonRecords()
    assert orjson.loads(records.encode(Place(zip_code="1000"))) == {"postal-code": "1000"}
    assert records.decode(Place, b'{"postal-code": "1000"}') == Place(zip_code="1000")


@attrs.frozen
class TwoOnOne(Message):
    sender: str
    from_: str = attrs.field(metadata=trio_rooms.wire("sender"))


@attrs.frozen
class OnCamel(Message):
    user_id: str
    other: str = attrs.field(metadata=trio_rooms.wire("userId"))


@attrs.frozen
class Dollar(Message):
    session: str = attrs.field(metadata=trio_rooms.wire("$session"))


@attrs.frozen
class NamedType(Message):
    kind: str = attrs.field(metadata=trio_rooms.wire("type"))


@attrs.frozen
class NestedDollar:
    x: int = attrs.field(metadata=trio_rooms.wire("$x"))


@attrs.frozen
class HoldsNestedDollar(Message):
    inner: NestedDollar


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (TwoOnOne, "fields 'sender' and 'from_' are both named 'sender' on the wire"),
        (OnCamel, "fields 'user_id' and 'other' are both named 'userId' on the wire"),
        (Dollar, r"Dollar.session: the wire name '\$session' starts with '\$'"),
        (NamedType, "field 'kind' is named 'type' on the wire, which clashes with the tag"),
        (HoldsNestedDollar, r"NestedDollar.x: the wire name '\$x' starts with '\$'"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_clashes_fail_when_the_codec_is_built(
    fmt: WireFormat, cls: type[Message], message: str
) -> None:
    """Two fields on one name, a ``$`` name or a message field named ``type`` are TypeErrors."""
    with pytest.raises(TypeError, match=message):
        make_codec(fmt, cls)


def test_a_nested_class_may_name_a_field_type() -> None:
    """Only a message's own fields clash with its tag; a nested class may use ``type``."""
    assert [f.wire for f in wire_fields(Red, camel_case=True)] == ["type", "hue"]
    make_codec("json", Moved)


def test_wire_checks_its_argument() -> None:
    """``wire`` takes a non-empty str."""
    with pytest.raises(TypeError, match="a wire name must be a str, got int"):
        trio_rooms.wire(1)  # pyright: ignore[reportArgumentType] - on purpose
    with pytest.raises(ValueError, match="a wire name must not be empty"):
        trio_rooms.wire("")
    assert trio_rooms.wire("from") == {"trio_rooms.wire": "from"}


@attrs.frozen
class BadMetadata(Message):
    x: int = attrs.field(metadata={"trio_rooms.wire": 3})


def test_metadata_written_by_hand_is_checked() -> None:
    """A wire name that did not come from ``wire`` is checked when the codec is built."""
    with pytest.raises(TypeError, match=r"BadMetadata\.x: a wire name must be a non-empty str"):
        make_codec("json", BadMetadata)
