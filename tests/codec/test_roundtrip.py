"""Encoding then decoding gives back the message, in both formats."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import orjson
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
    Order,
    Point,
    SendChat,
    SetName,
    Square,
    TreeMsg,
    UserLeft,
)
from hypothesis import given
from hypothesis import strategies as st

from trio_rooms._errors import DecodeError
from trio_rooms._message import Message
from trio_rooms.codec import Codec, JsonCodec, MsgpackCodec, WireFormat, make_codec
from trio_rooms.codec._record import JsonRecords

AnyMsg = SendChat | SetName | UserLeft | Order | Everything | TreeMsg
CLASSES = (SendChat, SetName, UserLeft, Order, Everything, TreeMsg)

ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text()
items = st.builds(Item, id=ints, label=st.none() | texts)
points = st.builds(Point, x_pos=floats, y_pos=floats)
nodes = st.recursive(
    st.builds(Node, value=ints),
    lambda children: st.builds(Node, value=ints, children=st.lists(children, max_size=3)),
    max_leaves=10,
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(SendChat, text=texts),
    st.builds(SetName, name=texts),
    st.builds(UserLeft, user_id=texts, reason=st.none() | texts),
    st.builds(
        Order,
        user_id=texts,
        items=st.lists(items),
        note=st.none() | texts,
        scores=st.dictionaries(texts, ints),
        ratio=floats,
        urgent=st.booleans(),
    ),
    st.builds(
        Everything,
        big_int=ints,
        ratio=floats,
        flag=st.booleans(),
        title=texts,
        items=st.lists(items, max_size=4),
        coords=st.lists(ints, max_size=4).map(tuple),
        pair=st.tuples(ints, texts),
        scores=st.dictionaries(texts, ints, max_size=4),
        origin=points,
        maybe_point=st.none() | points,
        mode=st.sampled_from(["fast", "slow"]),
        color=st.sampled_from(Color),
        level=st.sampled_from(Level),
        pet=st.builds(Cat, kind=st.just("cat"), lives=ints)
        | st.builds(Dog, kind=st.just("dog"), good_boy=st.booleans()),
        shape=st.none() | st.builds(Circle, radius=floats) | st.builds(Square, side_len=floats),
        nickname=st.none() | texts,
        count=ints,
        labels=st.lists(texts, max_size=3).map(tuple),
        notes=st.lists(texts, max_size=3),
        number=ints | texts,
    ),
    st.builds(TreeMsg, tree=nodes),
)

CODECS: list[Codec[AnyMsg]] = [
    make_codec(fmt, *CLASSES, camel_case=camel)
    for fmt in ("json", "msgpack")
    for camel in (True, False)
]

PAIRS = {
    camel: (JsonCodec(*CLASSES, camel_case=camel), MsgpackCodec(*CLASSES, camel_case=camel))
    for camel in (True, False)
}


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: f"{c.format}-{c!r}")
@given(message=messages)
def test_round_trip(codec: Codec[AnyMsg], message: AnyMsg) -> None:
    """Every message decodes to an equal message in both formats and namings."""
    assert codec.decode(codec.encode(message)) == message


@pytest.mark.parametrize("camel_case", [True, False])
@given(message=messages)
def test_json_and_msgpack_carry_the_same_object(camel_case: bool, message: AnyMsg) -> None:
    """Both formats put the same object on the wire, so clients see one shape."""
    import msgpack

    json_codec, msgpack_codec = PAIRS[camel_case]
    as_json = orjson.loads(json_codec.encode(message))
    as_msgpack = msgpack.unpackb(msgpack_codec.encode(message))
    assert as_json == as_msgpack


def test_wire_shape_is_tagged_and_camel_cased() -> None:
    """Messages are objects with "type" first and lowerCamelCase field names."""
    codec = JsonCodec(UserLeft, Order)
    assert codec.encode(UserLeft(user_id="u1", reason="bye")) == (
        b'{"type":"userLeft","userId":"u1","reason":"bye"}'
    )
    assert orjson.loads(codec.encode(Order(user_id="u", items=[Item(id=1)], note=None))) == {
        "type": "order",
        "userId": "u",
        "items": [{"id": 1}],
        "scores": {},
        "ratio": 1.0,
        "urgent": False,
    }


def test_camel_case_false_keeps_python_names() -> None:
    """With camel_case=False the wire uses the Python field names."""
    codec = JsonCodec(UserLeft, camel_case=False)
    assert codec.encode(UserLeft(user_id="u1")) == b'{"type":"userLeft","user_id":"u1"}'
    assert codec.decode('{"type":"userLeft","user_id":"u1"}') == UserLeft(user_id="u1")


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_none_is_omitted_on_encode(fmt: WireFormat) -> None:
    """An optional field whose value is None is left out, not sent as null."""
    import msgpack

    codec = make_codec(fmt, UserLeft, Everything)
    data = codec.encode(UserLeft(user_id="u1", reason=None))
    obj = orjson.loads(data) if fmt == "json" else msgpack.unpackb(data)
    assert obj == {"type": "userLeft", "userId": "u1"}


def test_missing_optional_decodes_as_none() -> None:
    """A missing key for an `X | None` field decodes as None, with or without a default."""
    codec = JsonCodec(UserLeft, Order)
    assert codec.decode('{"type":"userLeft","userId":"u"}') == UserLeft(user_id="u")
    # ``note`` has no default: missing still means None.
    assert codec.decode('{"type":"order","userId":"u","items":[]}') == Order(
        user_id="u", items=[], note=None
    )
    assert codec.decode('{"type":"userLeft","userId":"u","reason":null}') == UserLeft(user_id="u")


def test_int_is_accepted_for_float() -> None:
    """An integer on the wire decodes into a float field as a float."""
    codec = JsonCodec(Order)
    order = codec.decode('{"type":"order","userId":"u","items":[],"ratio":2}')
    assert order.ratio == 2.0
    assert type(order.ratio) is float


def test_extra_keys_allowed_when_configured() -> None:
    """forbid_extra_keys=False ignores keys that name no field, nested ones included."""
    codec = JsonCodec(Order, forbid_extra_keys=False)
    order = codec.decode('{"type":"order","userId":"u","items":[{"id":1,"x":2}],"foo":1}')
    assert order == Order(user_id="u", items=[Item(id=1)], note=None)


def test_custom_tag_and_tags_and_classes() -> None:
    """The codec exposes its classes and their tags, custom tags included."""
    codec = MsgpackCodec(SendChat, Everything)
    assert codec.classes == (SendChat, Everything)
    assert codec.tags == ("sendChat", "everything!")
    assert codec.format == "msgpack"
    assert JsonCodec(SendChat).format == "json"
    assert repr(codec) == "MsgpackCodec(SendChat, Everything)"


def test_encode_json_text_is_utf8() -> None:
    """JSON frames are UTF-8 text, unicode included."""
    data = JsonCodec(SendChat).encode(SendChat(text="héllo ☃ 𝄞"))
    assert data.decode("utf-8") == '{"type":"sendChat","text":"héllo ☃ 𝄞"}'


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_encode_rejects_integers_beyond_64_bits(fmt: WireFormat) -> None:
    """An integer no wire format can carry fails to encode with a clear ValueError."""
    codec = make_codec(fmt, Order)
    with pytest.raises(ValueError, match="cannot encode Order: Integer"):
        codec.encode(Order(user_id="u", items=[Item(id=2**64)], note=None))
    # 2**64 - 1 still fits (as uint64), and the packer is still usable after a failure.
    ok = Order(user_id="u", items=[Item(id=2**64 - 1)], note=None)
    assert codec.decode(codec.encode(ok)) == ok


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_encode_rejects_non_finite_floats(fmt: WireFormat, value: float) -> None:
    """NaN and infinities fail to encode rather than turning into null (orjson) or
    values the other format cannot carry."""
    codec = make_codec(fmt, Order)
    with pytest.raises(ValueError, match="only finite floats"):
        codec.encode(Order(user_id="u", items=[], note=None, ratio=value))


def test_encode_rejects_foreign_message() -> None:
    """Encoding a message the codec was not built for is a TypeError."""
    codec = JsonCodec(SendChat)
    with pytest.raises(TypeError, match="SetName is not one of the messages of JsonCodec"):
        codec.encode(SetName(name="x"))  # pyright: ignore[reportArgumentType]  # on purpose


@attrs.frozen
class Scores(Message):
    values: Sequence[int]


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_sequence_field_carries_any_number_of_items(fmt: WireFormat) -> None:
    """A ``Sequence[int]`` field is a list of any length on the wire, not a fixed tuple."""
    codec = make_codec(fmt, Scores)
    for values in [(), (1,), (1, 2, 3)]:
        assert codec.decode(codec.encode(Scores(values=values))) == Scores(values=values)


@pytest.mark.parametrize("body", [b"5", b"null", b'"text"', b"true"])
def test_a_scalar_body_for_a_recursive_record_is_a_decode_error(body: bytes) -> None:
    """A JSON scalar where a recursive record is expected fails to decode (a 400), not a 500."""
    with pytest.raises(DecodeError, match="expected"):
        JsonRecords().decode(Node, body)
