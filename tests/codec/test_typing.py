"""pyright infers codecs as generic in the union of their classes (checked statically)."""

from __future__ import annotations

from typing import Literal, assert_type

from codec_messages import SendChat, SetName, UserLeft

from trio_rooms.codec import Codec, JsonCodec, MsgpackCodec, WireFormat, make_codec


def wire_format(codec: Codec[SendChat | SetName]) -> WireFormat:
    return codec.format


def test_codec_types_are_unions_of_their_classes() -> None:
    """JsonCodec(A, B) is a JsonCodec[A | B] and a Codec[A | B]; decode returns A | B."""
    codec = JsonCodec(SendChat, SetName)
    assert_type(codec, JsonCodec[SendChat | SetName])
    as_protocol: Codec[SendChat | SetName] = codec
    message = codec.decode(b'{"type":"setName","name":"x"}')
    assert_type(message, SendChat | SetName)
    assert_type(as_protocol.decode('{"type":"sendChat","text":"x"}'), SendChat | SetName)
    assert_type(codec.encode(SetName(name="x")), bytes)

    binary = MsgpackCodec(SendChat, SetName, UserLeft)
    assert_type(binary, MsgpackCodec[SendChat | SetName | UserLeft])
    assert_type(binary.format, Literal["msgpack"])
    assert_type(wire_format(codec), WireFormat)

    chosen = make_codec("json", SendChat, UserLeft)
    assert_type(chosen, Codec[SendChat | UserLeft])
    assert_type(chosen.classes, tuple[type[SendChat | UserLeft], ...])
    assert_type(chosen.tags, tuple[str, ...])
    assert chosen.format == "json"
