"""The library's own frames: exact bytes, round trips and strict parsing (`trio_rooms._wire`)."""

from __future__ import annotations

import re

import msgpack
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import trio_rooms
from trio_rooms import DecodeError, Rooms, testing
from trio_rooms._wire import (
    MAX_RID,
    ErrorFrame,
    LibraryFrame,
    PresenceDiffFrame,
    PresenceStateFrame,
    PresenceWireMeta,
    RequestFailedFrame,
    ResyncFrame,
    SessionFrame,
    SkippedFrame,
    add_rid,
    encode_library_frame,
    parse_library_frame,
    split_rid,
)

from .chat_app import ChatRoom, UserJoined

SESSION = SessionFrame(id="abc", token="abc.t0k", resumed=False)
RESUMED = SessionFrame(id="abc", token="abc.t0k", resumed=True)
REPLAYED = SessionFrame(id="abc", token="abc.t0k", resumed=True, replayed=12)
RESYNC = ResyncFrame("gone")
PRESENCE_STATE = PresenceStateFrame({"ann": [PresenceWireMeta("r1", {"name": "phone"})]})
PRESENCE_DIFF = PresenceDiffFrame(
    joins={"bob": [PresenceWireMeta("r3", {"name": "web"})]},
    leaves={"ann": [PresenceWireMeta("r1", {"name": "phone"})]},
)


def _fixstr(text: str) -> bytes:
    """A msgpack str of under 32 UTF-8 bytes, written out by the spec (0xa0 | length)."""
    data = text.encode()
    assert len(data) < 32
    return bytes([0xA0 | len(data)]) + data


def _str8(text: str) -> bytes:
    """A msgpack str of 32 to 255 UTF-8 bytes, written out by the spec (0xd9, length)."""
    data = text.encode()
    assert 32 <= len(data) < 256
    return bytes([0xD9, len(data)]) + data


# Written out by hand, not by the encoders: these are the bytes clients already parse.
GOLDEN: list[tuple[LibraryFrame, trio_rooms.WireFormat, bytes]] = [
    (ErrorFrame("oops"), "json", b'{"error":"oops"}'),
    (ErrorFrame('say "hi" \u00fc'), "json", b'{"error":"say \\"hi\\" \xc3\xbc"}'),
    (SESSION, "json", b'{"$session":{"id":"abc","token":"abc.t0k","resumed":false}}'),
    (RESUMED, "json", b'{"$session":{"id":"abc","token":"abc.t0k","resumed":true}}'),
    (
        REPLAYED,
        "json",
        b'{"$session":{"id":"abc","token":"abc.t0k","resumed":true,"replayed":12}}',
    ),
    (RESYNC, "json", b'{"$resync":{"reason":"gone"}}'),
    (RESYNC, "msgpack", b"\x81\xa7$resync\x81\xa6reason\xa4gone"),
    (SkippedFrame(3), "json", b'{"$skipped":3}'),
    (SkippedFrame(3), "msgpack", b"\x81\xa8$skipped\x03"),
    (ErrorFrame("oops"), "msgpack", b"\x81\xa5error\xa4oops"),
    (
        PRESENCE_STATE,
        "json",
        b'{"$presence":{"state":{"ann":[{"ref":"r1","meta":{"name":"phone"}}]}}}',
    ),
    (
        PRESENCE_DIFF,
        "json",
        b'{"$presence":{"joins":{"bob":[{"ref":"r3","meta":{"name":"web"}}]},'
        b'"leaves":{"ann":[{"ref":"r1","meta":{"name":"phone"}}]}}}',
    ),
    (
        PRESENCE_STATE,
        "msgpack",
        b"\x81\xa9$presence\x81\xa5state\x81\xa3ann\x91"
        b"\x82\xa3ref\xa2r1\xa4meta\x81\xa4name\xa5phone",
    ),
    (
        SESSION,
        "msgpack",
        b"\x81\xa8$session\x83\xa2id\xa3abc\xa5token\xa7abc.t0k\xa7resumed\xc2",
    ),
    (
        RESUMED,
        "msgpack",
        b"\x81\xa8$session\x83\xa2id\xa3abc\xa5token\xa7abc.t0k\xa7resumed\xc3",
    ),
]


def _as_sent(wire: trio_rooms.WireFormat, payload: bytes) -> str | bytes:
    """The payload as the frame a client receives: text for JSON, binary for msgpack."""
    return payload.decode() if wire == "json" else payload


@pytest.mark.parametrize(("frame", "wire", "golden"), GOLDEN)
def test_library_frames_encode_to_the_exact_bytes_clients_parse(
    frame: LibraryFrame, wire: trio_rooms.WireFormat, golden: bytes
) -> None:
    """Each library frame encodes, in each format, to exactly the bytes of the wire protocol."""
    assert encode_library_frame(wire, frame) == golden


@pytest.mark.parametrize(("frame", "wire", "golden"), GOLDEN)
def test_the_golden_bytes_parse_back_to_their_frame(
    frame: LibraryFrame, wire: trio_rooms.WireFormat, golden: bytes
) -> None:
    """The wire protocol's bytes, received as a text or binary frame, parse to the record."""
    assert parse_library_frame(_as_sent(wire, golden)) == frame


_text = st.text(st.characters(exclude_categories=["Cs"]))  # JSON has no lone surrogates
_frames = st.one_of(
    st.builds(ErrorFrame, _text),
    st.builds(
        SessionFrame,
        id=_text,
        token=_text,
        resumed=st.booleans(),
        replayed=st.none() | st.integers(0, 2**63 - 1),
    ),
    st.builds(ResyncFrame, _text),
    st.builds(SkippedFrame, st.integers(1, 2**63 - 1)),
)


@given(_frames, st.sampled_from(["json", "msgpack"]))
def test_every_library_frame_round_trips(frame: LibraryFrame, wire: trio_rooms.WireFormat) -> None:
    """Any error text or session fields survive encoding and parsing in both formats."""
    assert parse_library_frame(_as_sent(wire, encode_library_frame(wire, frame))) == frame


@pytest.mark.parametrize(
    "data",
    [
        '{"type":"chat","text":"hi"}',
        '{"type":"chat","error":"a field of a user message"}',
        '{"type":"chat","$rid":1}',
        '{"text":"no library key"}',
        "{}",
        '[{"error":"x"}]',
        '"error"',
        "42",
        "null",
        '{"error": "unterminated',
        "",
        b'{"error":"json in a binary frame"}',
        msgpack.packb({"type": "chat", "text": "hi"}),
        msgpack.packb([1, 2]),
        msgpack.packb({1: "an integer key"}),
        b"\xc1",  # never used in msgpack
        b"\x81\xa5error",  # cut short
        b"",
    ],
)
def test_a_frame_that_is_no_library_frame_parses_to_none(data: str | bytes) -> None:
    """A user message, another map, a non-map or undecodable bytes is not a library frame."""
    assert parse_library_frame(data) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"error": 5}, "expected 'error' to be a string, got int"),
        ({"error": None}, "expected 'error' to be a string, got null"),
        (
            {"error": "x", "code": 1},
            "expected a library frame of one key, got the keys 'code', 'error'",
        ),
        ({"$session": "abc"}, "expected '$session' to be a map, got str"),
        (
            {"$session": {"id": "a", "token": "t"}},
            "expected '$session' to have the keys 'id', 'resumed', 'token' (and 'replayed'), "
            "got 'id', 'token'",
        ),
        (
            {"$session": {"id": "a", "token": "t", "resumed": False, "replayed": -3}},
            "expected '$session.replayed' to be a count, got int",
        ),
        (
            {"$session": {"id": "a", "token": "t", "resumed": True, "replayed": True}},
            "expected '$session.replayed' to be a count, got bool",
        ),
        (
            {"$session": {}},
            "expected '$session' to have the keys 'id', 'resumed', 'token' (and 'replayed'), "
            "got none",
        ),
        (
            {"$session": {"id": 7, "token": "t", "resumed": False}},
            "expected '$session.id' to be a string, got int",
        ),
        (
            {"$session": {"id": "a", "token": ["t"], "resumed": False}},
            "expected '$session.token' to be a string, got list",
        ),
        (
            {"$session": {"id": "a", "token": "t", "resumed": 0}},
            "expected '$session.resumed' to be a boolean, got int",
        ),
        ({"$resync": 3}, "expected '$resync' to be a map, got int"),
        ({"$resync": {"why": "x"}}, "expected '$resync' to have the key 'reason', got 'why'"),
        ({"$resync": {"reason": 1}}, "expected '$resync.reason' to be a string, got int"),
        ({"$skipped": 0}, "expected '$skipped' to be a positive count, got int"),
        ({"$skipped": True}, "expected '$skipped' to be a positive count, got bool"),
        ({"$skipped": "3"}, "expected '$skipped' to be a positive count, got str"),
        ({"$presence": []}, "expected '$presence' to be a map, got list"),
        (
            {"$presence": {"joins": {}}},
            "expected '$presence' to have the key 'state', or the keys 'joins', 'leaves', "
            "got 'joins'",
        ),
        (
            {"$presence": {"state": {"ann": {}}}},
            "expected '$presence.state'['ann'] to be a list, got dict",
        ),
        (
            {"$presence": {"state": {"ann": [{"ref": "r"}]}}},
            "expected '$presence.state'['ann'] items to be maps of 'ref' and 'meta'",
        ),
        (
            {"$presence": {"joins": {"ann": [{"ref": 1, "meta": "m"}]}, "leaves": {}}},
            "expected '$presence.joins'['ann'] refs to be strings, got int",
        ),
        (
            {"$rid": 1},
            "expected one of the library frames 'error', '$session', '$resync', '$error', "
            "'$skipped', '$presence', got '$rid'",
        ),
    ],
)
@pytest.mark.parametrize("wire", ["json", "msgpack"])
def test_a_malformed_library_frame_raises_a_decode_error_that_says_what_was_wrong(
    content: dict[str, object], reason: str, wire: trio_rooms.WireFormat
) -> None:
    """A map that is a library frame by its key but not of its shape raises DecodeError."""
    data = _as_sent(wire, orjson.dumps(content) if wire == "json" else msgpack.packb(content))
    with pytest.raises(DecodeError) as raised:
        parse_library_frame(data)
    assert str(raised.value) == reason
    assert raised.value.frame == data


@pytest.mark.parametrize("wire", ["json", "msgpack"])
async def test_the_server_sends_the_golden_session_frame(
    rooms: Rooms[ChatRoom], wire: trio_rooms.WireFormat
) -> None:
    """A resumable connection's first frame from the server is the $session frame, byte for byte."""
    async with testing.connect(rooms, "lobby", format=wire, query="resume=") as client:
        frame = await client.receive_frame()
        joined = await client.receive()
    assert isinstance(joined, UserJoined)
    session_id = joined.user_id
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", session_id)
    info = parse_library_frame(frame)
    assert isinstance(info, SessionFrame)
    token = info.token
    assert re.fullmatch(rf"{session_id}\.[A-Za-z0-9_-]{{43}}", token)
    if wire == "json":
        golden: str | bytes = (
            f'{{"$session":{{"id":"{session_id}","token":"{token}","resumed":false}}}}'
        )
    else:
        golden = (
            b"\x81\xa8$session\x83\xa2id"
            + _fixstr(session_id)
            + b"\xa5token"
            + _str8(token)
            + b"\xa7resumed\xc2"
        )
    assert frame == golden


@pytest.mark.parametrize(
    ("wire", "send", "golden"),
    [
        (
            "json",
            b"\x00",
            '{"error":"binary frames are not accepted by this session"}',
        ),
        (
            "msgpack",
            '{"type":"setName","name":"x"}',
            b"\x81\xa5error" + _str8("expected a binary (msgpack) frame, got a text frame"),
        ),
    ],
)
async def test_the_server_sends_the_golden_error_frame(
    rooms: Rooms[ChatRoom], wire: trio_rooms.WireFormat, send: str | bytes, golden: str | bytes
) -> None:
    """A frame of the wrong kind is answered with the {"error": ...} frame, byte for byte."""
    async with testing.connect(rooms, "lobby", format=wire) as client:
        assert isinstance(await client.receive(), UserJoined)
        client.send_frame(send)
        assert await client.receive_frame() == golden


@pytest.mark.parametrize("wire", ["json", "msgpack"])
@pytest.mark.parametrize("pairs", [1, 14, 15, 16, 70_000])
@pytest.mark.parametrize("rid", [0, 7, MAX_RID])
def test_a_request_id_goes_on_and_comes_off_any_message(
    wire: trio_rooms.WireFormat, pairs: int, rid: int
) -> None:
    """``add_rid`` then ``split_rid`` give back the id and the message, whatever its size."""
    content: dict[str, object] = {"type": "t", **{f"k{i}": i for i in range(1, pairs)}}
    payload = orjson.dumps(content) if wire == "json" else msgpack.packb(content)
    tagged = add_rid(wire, payload, rid)
    loaded = orjson.loads(tagged) if wire == "json" else msgpack.unpackb(tagged)
    assert loaded == {**content, "$rid": rid}
    split = split_rid(tagged.decode() if wire == "json" else tagged)
    assert split is not None
    found, rest = split
    assert found == rid
    if isinstance(rest, str):
        assert orjson.loads(rest) == content
    else:
        assert msgpack.unpackb(rest) == content


@pytest.mark.parametrize("wire", ["json", "msgpack"])
@pytest.mark.parametrize("value", [-1, MAX_RID + 1, 1.5, "7", True, None])
def test_a_request_id_that_is_not_one_is_none(wire: trio_rooms.WireFormat, value: object) -> None:
    """A ``$rid`` that is no id from 0 to 2**53-1 is found, but as ``None``."""
    content = {"type": "t", "$rid": value}
    payload = orjson.dumps(content).decode() if wire == "json" else msgpack.packb(content)
    assert split_rid(payload) == (
        None,
        orjson.dumps({"type": "t"}).decode() if wire == "json" else msgpack.packb({"type": "t"}),
    )


@pytest.mark.parametrize(
    "data", ['{"type":"t","text":"$rid"}', '{"type":"t"}', b"\x81\xa4type\xa4$rid", b"\xc1"]
)
def test_a_frame_without_a_request_id_is_left_alone(data: str | bytes) -> None:
    """A frame with no top-level ``$rid`` key (a string value of "$rid" too) is no request."""
    assert split_rid(data) is None


def test_the_request_failed_frame_round_trips() -> None:
    """``{"$error": {"rid", "reason"}}`` parses back to the frame it encodes, in both formats."""
    frame = RequestFailedFrame(7, "no such player")
    assert encode_library_frame("json", frame) == b'{"$error":{"rid":7,"reason":"no such player"}}'
    for wire in ("json", "msgpack"):
        payload = encode_library_frame(wire, frame)
        assert parse_library_frame(payload.decode() if wire == "json" else payload) == frame
    with pytest.raises(DecodeError, match=re.escape("'$error.rid' to be a request id, got bool")):
        parse_library_frame('{"$error":{"rid":true,"reason":"x"}}')
