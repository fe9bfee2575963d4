"""Each way a frame can be wrong gives one precise DecodeError."""

from __future__ import annotations

import time

import msgpack
import orjson
import pytest
from codec_messages import Everything, Order, SendChat, SetName, TreeMsg, UserLeft

from trio_rooms._errors import DecodeError
from trio_rooms.codec import JsonCodec, MsgpackCodec, WireFormat, make_codec

json_codec = JsonCodec(SendChat, SetName, UserLeft, Order, Everything, TreeMsg)
msgpack_codec = MsgpackCodec(SendChat, SetName, UserLeft, Order, Everything, TreeMsg)


def error(data: bytes | str, fmt: WireFormat = "json") -> str:
    codec = json_codec if fmt == "json" else msgpack_codec
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    return str(info.value)


def both(obj: object) -> list[str]:
    """The errors for ``obj`` sent as JSON and as msgpack (they must agree)."""
    return [error(orjson.dumps(obj)), error(msgpack.packb(obj), "msgpack")]


def order(**fields: object) -> dict[str, object]:
    return {"type": "order", "userId": "u", "items": [], **fields}


def test_expected_int_with_path() -> None:
    """A wrong type deep in a list reports the wire path to it."""
    assert both(order(items=[{"id": 1}, {"id": "2"}])) == ["expected int @ $.items[1].id"] * 2


def test_required_field_missing() -> None:
    """A missing required field is named by its wire name."""
    assert both({"type": "userLeft"}) == ["required field missing @ $.userId"] * 2


def test_extra_fields() -> None:
    """Unknown keys are rejected by default, at the level where they appear."""
    assert both(order(foo=1)) == ["extra fields found (foo) @ $"] * 2
    assert both(order(items=[{"id": 1, "bar": 2}])) == ["extra fields found (bar) @ $.items[0]"] * 2


def test_python_name_is_an_extra_field_when_camel_casing() -> None:
    """With camel_case, the Python name of a field is not accepted in its place."""
    assert (
        both({"type": "userLeft", "user_id": "u"})
        == ["required field missing @ $.userId; extra fields found (user_id) @ $"] * 2
    )


def test_unknown_message_type() -> None:
    """An unknown tag lists the tags the codec expects."""
    codec = JsonCodec(SendChat, SetName)
    with pytest.raises(DecodeError) as info:
        codec.decode('{"type":"zap"}')
    assert str(info.value) == "unknown message type 'zap': expected one of 'sendChat', 'setName'"


def test_missing_type() -> None:
    """An object without "type" is rejected."""
    assert both({"text": "hi"}) == ['missing "type"'] * 2


def test_type_must_be_a_string() -> None:
    """A "type" that is not a string is rejected."""
    assert both({"type": 1}) == ['"type" must be a string'] * 2
    assert both({"type": None}) == ['"type" must be a string'] * 2


def test_top_level_must_be_an_object() -> None:
    """A frame holding anything but an object is rejected, naming what it holds."""
    assert error("[1, 2]") == "expected a JSON object, got list"
    assert error("null") == "expected a JSON object, got NoneType"
    assert error(msgpack.packb([1]), "msgpack") == "expected a msgpack map, got list"


def test_invalid_json_includes_orjson_reason() -> None:
    """Malformed JSON is rejected with orjson's reason and position."""
    assert error('{"type": ') == ("invalid JSON: unexpected end of data: line 1 column 10 (char 9)")
    assert (
        error("")
        == "invalid JSON: Input is a zero-length, empty document: line 1 column 1 (char 0)"
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_json_nan_and_infinity_are_rejected(literal: str) -> None:
    """orjson refuses NaN and Infinity, and numbers that overflow to infinity."""
    assert error('{"type":"order","userId":"u","items":[],"ratio":' + literal + "}").startswith(
        "invalid JSON: "
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_msgpack_nan_and_infinity_are_rejected(value: float) -> None:
    """msgpack can carry NaN and infinities, but the codec refuses them as JSON does."""
    data = msgpack.packb(order(ratio=value))
    assert error(data, "msgpack") == "expected a finite float @ $.ratio"


@pytest.mark.parametrize("literal", ["18446744073709551616", "-9223372036854775809", "1" * 40])
def test_json_integers_beyond_64_bits_are_rejected(literal: str) -> None:
    """orjson turns integers beyond 64 bits into floats; an int field rejects them clearly."""
    data = '{"type":"order","userId":"u","items":[{"id":' + literal + "}]}"
    assert error(data) == "integer out of 64-bit range @ $.items[0].id"


def test_largest_64_bit_integers_are_accepted() -> None:
    """The int range is [-2**63, 2**64 - 1], what both orjson and msgpack carry."""
    for value in (-(2**63), 2**64 - 1):
        obj = order(items=[{"id": value}])
        assert json_codec.decode(orjson.dumps(obj)) == msgpack_codec.decode(msgpack.packb(obj))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1", "expected int"),
        (1.9, "expected int"),
        (1.0, "expected int"),
        (True, "expected int"),
        (None, "expected int"),
    ],
)
def test_no_coercion_to_int(value: object, message: str) -> None:
    """Strings, floats and bools are not ints."""
    assert both(order(items=[{"id": value}])) == [f"{message} @ $.items[0].id"] * 2


@pytest.mark.parametrize("value", ["false", 0, 1, None])
def test_no_coercion_to_bool(value: object) -> None:
    """Only true and false are bools."""
    assert both(order(urgent=value)) == ["expected bool @ $.urgent"] * 2


@pytest.mark.parametrize("value", [123, {}, [], True, 1.5])
def test_no_coercion_to_str(value: object) -> None:
    """Numbers, objects, lists and bools are not strings."""
    assert both({"type": "sendChat", "text": value}) == ["expected str @ $.text"] * 2


@pytest.mark.parametrize("value", ["1.5", True, None])
def test_no_coercion_to_float(value: object) -> None:
    """Strings and bools are not floats."""
    assert both(order(ratio=value)) == ["expected float @ $.ratio"] * 2


def test_containers_are_checked() -> None:
    """Lists, objects, literals and enums reject values of the wrong shape."""
    assert both(order(items={"id": 1})) == ["expected a list @ $.items"] * 2
    assert both(order(items="ab")) == ["expected a list @ $.items"] * 2
    assert both(order(items=[1])) == ["expected an object @ $.items[0]"] * 2
    assert both(order(scores=[])) == ["expected an object @ $.scores"] * 2
    assert both(order(scores={"a": 1, "b": "x"})) == ["expected int @ $.scores['b']"] * 2
    assert both({"type": "sendChat"}) == ["required field missing @ $.text"] * 2


def everything(**fields: object) -> dict[str, object]:
    valid: dict[str, object] = {
        "type": "everything!",
        "bigInt": 1,
        "ratio": 1.5,
        "flag": True,
        "title": "t",
        "items": [],
        "coords": [1, 2],
        "pair": [1, "a"],
        "scores": {},
        "origin": {"xPos": 0, "yPos": 0},
        "mode": "fast",
        "color": "red",
        "level": 1,
        "pet": {"kind": "cat", "lives": 9},
        "shape": {"radius": 1.0},
    }
    return {**valid, **fields}


def test_valid_everything_decodes() -> None:
    """The fixture object is valid, so each test below changes one thing."""
    decoded = json_codec.decode(orjson.dumps(everything()))
    assert isinstance(decoded, Everything)
    assert decoded.title == "t"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "medium"}, "expected one of 'fast', 'slow' @ $.mode"),
        ({"color": "green"}, "expected one of 'red', 'blue' @ $.color"),
        ({"level": 3}, "expected one of 1, 2 @ $.level"),
        ({"level": True}, "expected one of 1, 2 @ $.level"),
        ({"pair": [1]}, "expected a list of 2 items @ $.pair"),
        ({"pair": ["a", "b"]}, "expected int @ $.pair[0]"),
        ({"coords": [1, "2"]}, "expected int @ $.coords[1]"),
        ({"origin": {"xPos": 0}}, "required field missing @ $.origin.yPos"),
        ({"pet": {"kind": "fish"}}, "expected one of 'cat', 'dog' @ $.pet.kind"),
        ({"pet": {"lives": 1}}, "required field missing @ $.pet.kind"),
        ({"pet": {"kind": "dog", "goodBoy": 1}}, "expected bool @ $.pet.goodBoy"),
        (
            {"shape": {"side": 1}},
            "expected one of Circle, Square: none of the keys 'radius', 'sideLen' found @ $.shape",
        ),
        ({"shape": {"sideLen": "1"}}, "expected float @ $.shape.sideLen"),
        ({"number": 1.5}, "expected int or str @ $.number"),
        ({"maybePoint": 1}, "expected an object @ $.maybePoint"),
    ],
)
def test_nested_errors(fields: dict[str, object], message: str) -> None:
    """Literals, enums, tuples, nested classes and unions report precise paths."""
    assert both(everything(**fields)) == [message] * 2


def test_many_errors_are_bounded() -> None:
    """Only the first three errors are listed and the message stays under 1 KiB."""
    obj = order(items=[{"id": str(i)} for i in range(1000)])
    messages = both(obj)
    assert messages[0] == messages[1]
    assert messages[0] == (
        "expected int @ $.items[0].id; expected int @ $.items[1].id; "
        "expected int @ $.items[2].id; and 997 more"
    )


def test_long_keys_and_many_extra_keys_are_bounded() -> None:
    """Echoed keys are cut short, so a client cannot inflate the message."""
    obj = order(**{f"{'k' * 5000}{i}": i for i in range(500)})
    obj["scores"] = {"x" * 5000: "bad"}
    for message in both(obj):
        assert len(message) < 1024
        assert message.startswith("expected int @ $.scores['xxxxx")
        assert "(495 more)" in message


def test_long_unknown_tag_is_bounded() -> None:
    """An unknown tag is echoed cut short."""
    message = error(orjson.dumps({"type": "z" * 10_000}))
    assert message == f"unknown message type '{'z' * 37}...': expected one of " + ", ".join(
        repr(t) for t in sorted(json_codec.tags)
    )


def test_invalid_utf8_in_json_bytes() -> None:
    """JSON bytes that are not UTF-8 are rejected."""
    assert error(b'{"type":"sendChat","text":"\xff"}').startswith(
        "invalid JSON: str is not valid UTF-8"
    )
    assert error('{"type":"sendChat","text":"\ud800"}').startswith("invalid JSON: ")


def test_text_to_msgpack_codec() -> None:
    """A msgpack codec only takes binary frames."""
    assert error('{"type":"sendChat","text":"x"}', "msgpack") == "expected a binary frame"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "invalid msgpack: Unpack failed: incomplete input"),
        (b"\xc1", "invalid msgpack: FormatError"),
        (b"\x81\xa4type", "invalid msgpack: Unpack failed: incomplete input"),
        (
            msgpack.packb({"type": "sendChat", "text": "x"}) + b"\x00",
            "invalid msgpack: extra bytes after the message",
        ),
        (
            b"\x81\x01\x02",
            "invalid msgpack: int is not allowed for map key when strict_map_key=True",
        ),
    ],
)
def test_invalid_msgpack(data: bytes, message: str) -> None:
    """Malformed msgpack is rejected with the unpacker's reason."""
    assert error(data, "msgpack") == message


def test_msgpack_bytes_are_not_str() -> None:
    """A msgpack bin value is not a string, and bytes keys are not field names."""
    assert (
        error(msgpack.packb({"type": "sendChat", "text": b"x"}), "msgpack")
        == "expected str @ $.text"
    )
    data = msgpack.packb({"type": "sendChat", "text": "x", b"text": 1}, use_bin_type=True)
    assert error(data, "msgpack") == "extra fields found (b'text') @ $"


def timed_error(data: bytes | str, fmt: WireFormat) -> str:
    start = time.perf_counter()
    message = error(data, fmt)
    # Generous: the parsers stop at their depth limit in well under a millisecond.
    assert time.perf_counter() - start < 0.5
    return message


def test_json_deep_nesting_is_rejected_fast() -> None:
    """orjson stops at 1024 levels; 10**5 levels are a DecodeError, not a RecursionError."""
    assert timed_error("[" * 10**5, "json") == "nesting too deep: more than 1024 levels"
    deep = '{"type":"order","userId":"u","items":[],"scores":' + '{"a":' * 10**5
    assert timed_error(deep, "json") == "nesting too deep: more than 1024 levels"


def test_msgpack_deep_nesting_is_rejected_fast() -> None:
    """msgpack stops at 1023 levels; 10**5 levels are a DecodeError."""
    assert timed_error(b"\x91" * 10**5 + b"\x90", "msgpack") == (
        "nesting too deep: more than 1023 levels"
    )


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_recursive_message_depth_is_limited(fmt: WireFormat) -> None:
    """A recursive message type is limited to 100 levels, below the parsers' limits,
    so structuring it can never hit Python's recursion limit."""
    codec = make_codec(fmt, TreeMsg)

    def tree(depth: int) -> dict[str, object]:
        node: dict[str, object] = {"value": 0}
        for _ in range(depth):
            node = {"value": 0, "children": [node]}
        return {"type": "treeMsg", "tree": node}

    def dumps(obj: object) -> bytes:
        return orjson.dumps(obj) if fmt == "json" else msgpack.packb(obj)

    assert codec.decode(dumps(tree(40))).tree.value == 0
    assert timed_error(dumps(tree(110)), fmt) == "nesting too deep: more than 100 levels"
    with pytest.raises(DecodeError, match="nesting too deep"):
        codec.decode(dumps(tree(51)))
