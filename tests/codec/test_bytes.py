"""``bytes`` fields: a bin in msgpack, a strict base64 string in JSON, the same message in both."""

from __future__ import annotations

import base64

import attrs
import msgpack
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_rooms import DecodeError, Message
from trio_rooms.codec import JsonCodec, MessageCheck, MsgpackCodec, WireFormat, make_codec
from trio_rooms.codec._record import JsonRecords


@attrs.frozen
class Chunk:
    data: bytes
    parts: list[bytes] = attrs.field(factory=list[bytes])


@attrs.frozen
class Upload(Message):
    payload: bytes
    thumb: bytes | None = None
    chunks: tuple[Chunk, ...] = ()
    by_name: dict[str, bytes] = attrs.field(factory=dict[str, bytes])
    pair: tuple[int, bytes] = (0, b"")
    code: bytes | int = 0


uploads = st.builds(
    Upload,
    payload=st.binary(max_size=40),
    thumb=st.none() | st.binary(max_size=5),
    chunks=st.lists(
        st.builds(Chunk, st.binary(max_size=5), st.lists(st.binary(max_size=5), max_size=2)),
        max_size=2,
    ).map(tuple),
    by_name=st.dictionaries(st.text(max_size=3), st.binary(max_size=5), max_size=2),
    pair=st.tuples(st.integers(0, 9), st.binary(max_size=5)),
    code=st.binary(max_size=5) | st.integers(0, 9),
)


@pytest.mark.parametrize("wire", ["json", "msgpack"])
@given(message=uploads)
def test_bytes_round_trip_everywhere_a_field_can_hold_them(
    wire: WireFormat, message: Upload
) -> None:
    """Bytes at the top, nested, in lists, tuples, dicts, optional, in a union come back equal."""
    codec = make_codec(wire, Upload)
    assert codec.decode(codec.encode(message)) == message


@given(message=uploads)
def test_a_message_means_the_same_in_both_formats(message: Upload) -> None:
    """The JSON frame's base64 strings and the msgpack frame's bins are the same bytes."""
    json_obj = orjson.loads(JsonCodec(Upload).encode(message))
    packed = msgpack.unpackb(MsgpackCodec(Upload).encode(message))
    assert base64.b64decode(json_obj["payload"], validate=True) == packed["payload"]
    assert type(packed["payload"]) is bytes


def test_json_writes_standard_base64_with_padding_and_msgpack_a_bin() -> None:
    """``b"\\xfb\\xff"`` is ``"+/8="`` in JSON (not URL-safe, padded) and a bin in msgpack."""
    message = Upload(b"\xfb\xff", thumb=b"")
    assert orjson.loads(JsonCodec(Upload).encode(message))["payload"] == "+/8="
    assert orjson.loads(JsonCodec(Upload).encode(message))["thumb"] == ""
    frame = MsgpackCodec(Upload).encode(message)
    assert b"\xc4\x02\xfb\xff" in frame  # bin 8, two bytes
    assert msgpack.unpackb(frame, raw=False)["thumb"] == b""


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("QQ", r"expected a base64 string @ \$\.payload"),  # padding left out
        ("QQ=", r"expected a base64 string @ \$\.payload"),
        ("Q===", r"expected a base64 string @ \$\.payload"),
        ("QQ==QQ==", r"expected a base64 string @ \$\.payload"),  # padding inside
        ("QUJD\n", r"expected a base64 string @ \$\.payload"),
        ("QU JD", r"expected a base64 string @ \$\.payload"),
        ("-_8=", r"expected a base64 string @ \$\.payload"),  # the URL-safe alphabet
        (5, r"expected str \(base64\) @ \$.payload"),
        ([1, 2], r"expected str \(base64\) @ \$.payload"),
    ],
)
def test_json_refuses_anything_but_strict_base64_at_the_field(value: object, error: str) -> None:
    """Invalid base64 is a DecodeError naming the field, never other bytes."""
    frame = orjson.dumps({"type": "upload", "payload": value})
    with pytest.raises(DecodeError, match=error):
        JsonCodec(Upload).decode(frame)


def test_json_reports_every_bad_base64_field_with_its_path() -> None:
    """Nested and contained bad strings are each reported with their wire path."""
    frame = orjson.dumps(
        {"type": "upload", "payload": "", "chunks": [{"data": "QQ", "parts": ["", "@"]}]}
    )
    with pytest.raises(DecodeError) as caught:
        JsonCodec(Upload).decode(frame)
    assert "@ $.chunks[0].data" in str(caught.value)
    assert "@ $.chunks[0].parts[1]" in str(caught.value)


@pytest.mark.parametrize("value", ["QQ==", 5, [1], None])
def test_msgpack_takes_only_a_bin_for_bytes(value: object) -> None:
    """A msgpack str (even base64), int, list or nil is not bytes."""
    frame = msgpack.packb({"type": "upload", "payload": value}, use_bin_type=True)
    with pytest.raises(DecodeError, match=r"expected bytes @ \$\.payload"):
        MsgpackCodec(Upload).decode(frame)


@pytest.mark.parametrize("wire", ["json", "msgpack"])
def test_a_value_fitting_no_member_of_a_bytes_union_names_bytes_once(wire: WireFormat) -> None:
    """``bytes | int`` given a float says what it takes, not the str a bytes member reads."""
    frame = make_codec(wire, Upload).encode(Upload(b""))
    obj = orjson.loads(frame) if wire == "json" else msgpack.unpackb(frame)
    obj["code"] = 1.5
    bad = orjson.dumps(obj) if wire == "json" else msgpack.packb(obj)
    with pytest.raises(DecodeError, match=r"^expected bytes or int @ \$\.code$"):
        make_codec(wire, Upload).decode(bad)


def test_a_union_of_bytes_and_str_is_refused_in_both_formats() -> None:
    """In JSON both are strings, so the union is refused for msgpack too: one meaning."""

    @attrs.frozen
    class Either(Message):
        value: bytes | str

    for codec_type in (JsonCodec, MsgpackCodec):
        with pytest.raises(TypeError, match="cannot tell apart"):
            codec_type(Either)


def test_http_bodies_carry_bytes_as_base64() -> None:
    """JSON records (route bodies and answers) use the JSON codec's base64."""
    records = JsonRecords()
    assert records.encode(Chunk(b"hi", [b"\x00"])) == b'{"data":"aGk=","parts":["AA=="]}'
    assert records.decode(Chunk, b'{"data":"aGk="}') == Chunk(b"hi")
    with pytest.raises(DecodeError, match=r"expected a base64 string @ \$\.data"):
        records.decode(Chunk, b'{"data":"aGk"}')


def test_outbound_checks_take_exactly_bytes() -> None:
    """A str, a bytearray or a memoryview where bytes are declared is refused with its path."""
    check = MessageCheck(Upload)
    check(Upload(b"ok", chunks=(Chunk(b"", [b"x"]),), code=b"c"))
    with pytest.raises(TypeError, match=r"Upload.payload: expected bytes, got str @ \$\.payload"):
        check(Upload("text"))  # pyright: ignore[reportArgumentType]  # on purpose
    with pytest.raises(TypeError, match=r"expected bytes, got bytearray @ \$\.chunks\[0\]\.data"):
        check(Upload(b"", chunks=(Chunk(bytearray(b"x")),)))  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match=r"@ \$\.byName\['k'\]"):
        check(Upload(b"", by_name={"k": memoryview(b"x")}))  # pyright: ignore[reportArgumentType]
