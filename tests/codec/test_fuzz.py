"""Whatever arrives, decode raises DecodeError and nothing else."""

from __future__ import annotations

import msgpack
import orjson
import pytest
from codec_messages import Everything, Order, SendChat, SetName, TreeMsg, UserLeft
from hypothesis import given
from hypothesis import strategies as st

from trio_rooms._errors import DecodeError
from trio_rooms.codec import Codec, JsonCodec, MsgpackCodec

CLASSES = (SendChat, SetName, UserLeft, Order, Everything, TreeMsg)
json_codec = JsonCodec(*CLASSES)
msgpack_codec = MsgpackCodec(*CLASSES)
AnyMsg = SendChat | SetName | UserLeft | Order | Everything | TreeMsg
CODECS: list[Codec[AnyMsg]] = [
    json_codec,
    msgpack_codec,
    JsonCodec(*CLASSES, camel_case=False, forbid_extra_keys=False),
]

# Every key a message of ours could have, so that random objects reach deep
# into the structuring code instead of stopping at the first missing field.
WIRE_KEYS = [
    "type", "text", "name", "userId", "reason", "items", "note", "scores", "ratio", "urgent",
    "id", "label", "bigInt", "flag", "title", "coords", "pair", "origin", "xPos", "yPos",
    "maybePoint", "mode", "color", "level", "pet", "kind", "lives", "goodBoy", "shape",
    "radius", "sideLen", "nickname", "count", "labels", "notes", "number", "tree", "value",
    "children", "user_id",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["cat", "dog", "fast", "red", "sendChat", "order", "treeMsg"])
)
keys = st.sampled_from(WIRE_KEYS) | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)


def with_tag(tag: str, rest: dict[str, object]) -> dict[str, object]:
    return {**rest, "type": tag}


tagged = st.builds(
    with_tag,
    st.sampled_from([*(cls.tag for cls in CLASSES), "zap"]),
    st.dictionaries(keys, json_values, max_size=8),
)


def decode_or_decode_error(codec: Codec[AnyMsg], data: bytes | str) -> None:
    try:
        codec.decode(data)
    except DecodeError as exc:
        message = str(exc)
    else:
        return
    assert 0 < len(message) < 1024


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@given(value=json_values | tagged)
def test_any_json_value(codec: Codec[AnyMsg], value: object) -> None:
    """Any JSON value, as JSON or as msgpack, decodes or raises DecodeError."""
    data = orjson.dumps(value) if codec.format == "json" else msgpack.packb(value)
    decode_or_decode_error(codec, data)


@given(data=st.binary() | st.text())
def test_any_bytes_or_text(data: bytes | str) -> None:
    """Arbitrary bytes and text decode or raise DecodeError, in both formats."""
    decode_or_decode_error(json_codec, data)
    decode_or_decode_error(msgpack_codec, data)


@given(
    value=st.dictionaries(
        st.text(max_size=3), st.binary() | st.integers(-(2**63), 2**64 - 1), max_size=3
    )
)
def test_msgpack_only_values(value: dict[str, bytes | int]) -> None:
    """msgpack values JSON has no counterpart for (bin) are rejected, not crashed on."""
    decode_or_decode_error(msgpack_codec, msgpack.packb({**value, "type": "order"}))
