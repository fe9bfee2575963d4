"""``trio_rooms.schema.export`` and its command line: settings, names, and the types it refuses."""

from __future__ import annotations

import enum
import json
import random
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import pytest

import trio_rooms
from trio_rooms import ConnectRequest, HttpRequest, Message, Room, Session, route
from trio_rooms.codec import JsonCodec
from trio_rooms.schema import export
from trio_rooms.schema._cli import main
from trio_rooms.schema._jsonschema import REPLIES
from trio_rooms.schema._naming import RESERVED, assign_names

from .kinds_app import KindsRoom, LooseRoom, Optionals, Point
from .node_contract import open_validator
from .requests_app import RequestsRoom


def room_of(*client: type[Message], server: type[Message] | None = None) -> type[Room[Any]]:
    """A room whose session takes ``client`` messages and sends ``server`` ones."""

    @attrs.frozen
    class Ping(Message):
        n: int

    union: Any = client[0]
    for cls in client[1:]:
        union = union | cls
    sent: Any = server or Ping

    class AnySession(Session[None, sent, union]):
        async def create_data(self, request: ConnectRequest) -> None:
            return None

        async def on_message(self, message: Any) -> None:
            pass

    class AnyRoom(Room[AnySession]):
        pass

    return AnyRoom


def test_kept_names_and_extra_keys_follow_the_codec_settings() -> None:
    """camel_case=False keeps the Python names; forbid_extra_keys=False makes plain objects."""
    contract = export(LooseRoom, camel_case=False, forbid_extra_keys=False)
    assert "x_pos: z.number()" in contract.typescript
    assert "xPos" not in contract.typescript
    assert "z.strictObject" not in contract.typescript
    defs: Any = contract.client["$defs"]
    assert "additionalProperties" not in defs["Point"]
    assert list(defs["Point"]["properties"]) == ["x_pos", "y_pos"]
    strict: Any = export(LooseRoom).client["$defs"]
    assert strict["Point"]["additionalProperties"] is False


def test_optional_fields_are_omitted_not_null() -> None:
    """An optional field is neither required nor nullable, as the codec writes it."""
    defs: Any = export(KindsRoom).server["$defs"]
    optionals = defs["Optionals"]
    assert optionals["properties"]["nickname"] == {"type": "string"}
    assert optionals["properties"]["retries"]["default"] == 3
    assert optionals["required"] == ["type"]
    assert "nickname" not in json.loads(JsonCodec(Optionals).encode(Optionals(nickname=None)))


@attrs.frozen
class OneOrFloat(Message):
    value: Literal[1] | float


class Size(enum.IntEnum):
    SMALL = 1


@attrs.frozen
class SizeOrFloat(Message):
    value: Size | float


@attrs.frozen
class Circle:
    kind: Literal["circle"] = "circle"


@attrs.frozen
class Square:
    kind: Literal["square"]


@attrs.frozen
class Shapes(Message):
    shape: Circle | Square


@attrs.frozen
class Keyed(Message):
    where: Point | Circle


@attrs.frozen
class Blob(Message):
    data: bytearray


@attrs.frozen
class BytesDefault(Message):
    data: list[bytes] = attrs.field(factory=lambda: [b"x"])


@attrs.frozen
class IntKeys(Message):
    scores: dict[int, str]


@attrs.frozen
class Huge(Message):
    n: Literal[1152921504606846976]  # 2**60


@attrs.frozen
class HugeDefault(Message):
    n: int = 2**60


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        (OneOrFloat, {}, "OneOrFloat.value: .* cannot be described: the codec reads a whole"),
        (SizeOrFloat, {}, "SizeOrFloat.value: .* reads a whole number as Size"),
        (Shapes, {}, "the codec requires 'kind', but Circle.kind has a default"),
        (Keyed, {"forbid_extra_keys": False}, "told apart by their keys"),
        (Blob, {}, "unsupported type on the wire: <class 'bytearray'>"),
        (BytesDefault, {}, r"BytesDefault.data: the default \['eA=='\] holds bytes inside"),
        (IntKeys, {}, "keys must be str on the wire"),
        (Huge, {}, "beyond JavaScript's safe integers"),
        (HugeDefault, {}, "HugeDefault.n: the default 1152921504606846976 is beyond"),
    ],
)
def test_what_cannot_be_described_is_refused(
    cls: type[Message], options: dict[str, bool], message: str
) -> None:
    """A type the codec refuses, or takes in a way no schema can say, raises TypeError naming it."""
    with pytest.raises(TypeError, match=message):
        export(room_of(cls), **options)


def test_a_keyed_union_is_described_with_strict_objects() -> None:
    """Classes told apart by their keys become a plain union when extra keys are rejected."""
    assert "where: z.union([Point, Circle])" in export(room_of(Keyed)).typescript


SessionT = TypeVar("SessionT", bound=Session[Any, Any, Any])


class GenericRoom(Room[SessionT]):
    pass


@attrs.frozen
class Ping(Message):
    n: int


class PingSession(Session[None, Ping, Ping]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Ping) -> None:
        pass


class RawRouteRoom(Room[PingSession]):
    # A result the route decorator's types refuse: the export must refuse it too.
    @route.get("/raw")  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedFunctionDecorator]
    async def raw(self, request: HttpRequest) -> dict[str, int]:
        return {}


def test_rooms_and_routes_that_cannot_be_read_are_refused() -> None:
    """A non-room, a generic room and a route result that is not an attrs class raise TypeError."""
    with pytest.raises(TypeError, match="is not a Room subclass"):
        export(dict)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="is generic"):
        export(GenericRoom)
    with pytest.raises(TypeError, match=r"returns dict\[str, int\]: expected attrs classes"):
        export(RawRouteRoom)


@attrs.frozen
class schema(Message):  # the name of one of the module's own exports, on purpose
    text: str


def test_names_are_unique_reserved_free_and_independent_of_order() -> None:
    """Clashing and reserved names get the same suffixes whatever order the definitions come in."""

    class A:
        pass

    class B:
        pass

    A.__name__ = B.__name__ = "string"
    keys: list[tuple[type, str | None]] = [(A, None), (B, None), (Point, None), (Point, "point")]
    names = assign_names(keys)
    for _ in range(5):
        random.shuffle(keys)
        assert assign_names(keys) == names
    assert names[Point, "point"] == "Point"
    assert names[Point, None] == "PointNested"
    assert sorted([names[A, None], names[B, None]]) == ["string_2", "string_3"]
    assert not set(names.values()) & RESERVED
    module = export(room_of(schema)).typescript
    assert (
        'export const schema_2 = z.strictObject({ type: z.literal("schema"), text: z.string() });'
        in module
    )
    assert (
        "export const schema = { client: ClientMessage, server: ServerMessage } as const;" in module
    )


def test_the_command_line_prints_or_writes_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --out the module goes to stdout; with it, every file goes into the folder."""
    assert main(["tests.schema.kinds_app:KindsRoom"]) == 0
    assert capsys.readouterr().out == export(KindsRoom).typescript
    assert main(["tests.schema.kinds_app:LooseRoom", "--out", str(tmp_path), "--keep-names"]) == 0
    contract = export(LooseRoom, camel_case=False)
    for name, text in contract.files().items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text
    assert json.loads((tmp_path / "routes" / "POST_move.body.schema.json").read_text())


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("tests.schema.kinds_app", "expected MODULE:RoomClass"),
        ("tests.schema.no_such_module:Room", "cannot import 'tests.schema.no_such_module'"),
        ("tests.schema.kinds_app:Nope", "has no 'Nope'"),
        ("tests.schema.kinds_app:Point", "is not a Room subclass"),
    ],
)
def test_the_command_line_refuses_a_bad_room(
    spec: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A room that cannot be found is a usage error: status 2 and the reason."""
    with pytest.raises(SystemExit) as exited:
        main([spec])
    assert exited.value.code == 2
    assert error in capsys.readouterr().err


def test_the_command_line_reports_what_cannot_be_described(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A room whose types cannot be described exits with 1 and the reason, writing nothing."""
    assert main(["tests.schema.kinds_app:KindsRoom", "--allow-extra-keys"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: Place.shape: Circle | Square are told apart by their keys" in captured.err


def test_integers_beyond_javascripts_safe_range_fail_zod_only(
    node_dir: Path, tmp_path: Path
) -> None:
    """2**60 passes the codec and JSON Schema; zod refuses it, as a JS number cannot hold it."""
    for name, text in export(KindsRoom).files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    frame = json.dumps({"type": "optionals", "count": 2**60})
    JsonCodec(Optionals).decode(frame)
    with open_validator(node_dir, tmp_path) as validator:
        verdict = validator.check("client", "client.schema.json", "json", frame)
        edge = json.dumps({"type": "optionals", "count": 2**53 - 1})
        safe = validator.check("client", "client.schema.json", "json", edge)
    assert (verdict.zod, verdict.json_schema) == (False, True)
    assert (safe.zod, safe.json_schema) == (True, True)


def test_a_field_with_its_own_wire_name_is_exported_under_that_name() -> None:
    """The seed's ``{type: 'chat', message, from}``: ``from_`` is ``from`` in both schemas."""

    @attrs.frozen
    class Chat(Message):
        tag = "chat"
        message: str
        from_: str = attrs.field(metadata=trio_rooms.wire("from"))

    contract = export(room_of(Chat))
    assert "from: z.string()" in contract.typescript
    assert "from_" not in contract.typescript
    defs: Any = contract.client["$defs"]
    assert list(defs["Chat"]["properties"]) == ["type", "message", "from"]
    assert defs["Chat"]["required"] == ["type", "message", "from"]


@attrs.frozen
class Frame:
    data: bytes
    parts: list[bytes] = attrs.field(factory=list[bytes])


@attrs.frozen
class Upload(Message):
    payload: bytes
    frame: Frame | None = None
    empty: bytes = b""
    magic: bytes = b"\x89P"


@attrs.frozen
class Plain(Message):
    text: str


def test_bytes_are_base64_in_json_and_a_bin_in_msgpack() -> None:
    """The module and the documents describe both formats; only what holds bytes is twinned."""
    contract = export(room_of(Upload, Plain))
    ts = contract.typescript
    assert "payload: z.base64()," in ts
    assert "export const UploadMsgpack = z.strictObject({" in ts
    assert "payload: z.instanceof(Uint8Array)," in ts
    assert "empty: z.instanceof(Uint8Array).default(() => new Uint8Array())," in ts
    assert "magic: z.instanceof(Uint8Array).default(() => Uint8Array.of(137, 80))," in ts
    assert 'magic: z.base64().default("iVA="),' in ts
    assert "export const FrameMsgpack = " in ts
    assert "PlainMsgpack" not in ts  # the same in both formats: one definition
    assert 'ClientMessageMsgpack = z.discriminatedUnion("type", [UploadMsgpack, Plain]);' in ts
    assert 'format: "json",' in ts
    assert 'format: "msgpack",' in ts
    assert "export const msgpackSchema = {" in ts
    json_defs: Any = contract.client["$defs"]
    assert json_defs["Upload"]["properties"]["payload"] == {
        "type": "string",
        "contentEncoding": "base64",
        "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    }
    assert json_defs["Upload"]["properties"]["empty"]["default"] == ""
    assert contract.msgpack_client is not None
    bin_defs: Any = contract.msgpack_client["$defs"]
    assert sorted(bin_defs) == ["FrameMsgpack", "Plain", "UploadMsgpack"]
    assert bin_defs["UploadMsgpack"]["properties"]["payload"] == {"x-msgpack": "bin"}
    assert "default" not in bin_defs["UploadMsgpack"]["properties"]["empty"]
    assert bin_defs["FrameMsgpack"]["properties"]["parts"] == {
        "type": "array",
        "items": {"x-msgpack": "bin"},
    }
    assert {"client.msgpack.schema.json", "server.msgpack.schema.json"} <= set(contract.files())


def test_without_bytes_one_contract_serves_both_formats() -> None:
    """No msgpack twin, no ``format`` key: the module works with either format."""
    contract = export(room_of(Plain))
    assert "Msgpack" not in contract.typescript
    assert "format:" not in contract.typescript
    assert contract.msgpack_client is None
    assert contract.msgpack_server is None
    assert not any("msgpack" in name for name in contract.files())


def test_bytes_in_routes_only_are_base64_and_make_no_msgpack_variant() -> None:
    """HTTP bodies are JSON whatever the socket's format."""

    class FrameRoom(room_of(Plain)):
        @route.post("/frame")
        async def post_frame(self, request: HttpRequest, body: Frame) -> Frame:
            return body

    contract = export(FrameRoom)
    assert '"POST /frame": { body: Frame, response: Frame },' in contract.typescript
    assert "data: z.base64()" in contract.typescript
    assert "Msgpack" not in contract.typescript


def test_requests_map_to_their_replies_in_both_documents_and_both_contracts() -> None:
    """Each request's tag maps to its reply, in the zod contracts and the server's documents."""
    contract = export(RequestsRoom)
    server: Any = contract.server
    assert server[REPLIES] == {
        "getScore": {"$ref": "#/$defs/Score"},
        "fetch": {"oneOf": [{"$ref": "#/$defs/Blob"}, {"$ref": "#/$defs/Missing"}]},
        "ping!": {"$ref": "#/$defs/Said"},
    }
    binary: Any = contract.msgpack_server
    assert binary[REPLIES]["fetch"]["oneOf"][0] == {"$ref": "#/$defs/BlobMsgpack"}
    assert REPLIES not in contract.client
    assert "getScore: Score," in contract.typescript
    assert 'fetch: z.discriminatedUnion("type", [BlobMsgpack, Missing]),' in contract.typescript


def test_a_room_without_requests_has_no_replies() -> None:
    """No request, no map: the contract of a room without requests is as it was."""
    contract = export(room_of(Plain))
    assert "replies" not in contract.typescript
    assert REPLIES not in contract.server


def test_a_request_whose_reply_is_not_a_server_message_is_refused() -> None:
    """The reply must be one the server sends: a request without a handler is checked too."""

    @attrs.frozen
    class Elsewhere(Message):
        n: int

    @attrs.frozen
    class Ask(trio_rooms.Request[Elsewhere]):
        pass

    with pytest.raises(TypeError, match=r"reply .*Elsewhere of the request .*Ask is not one of"):
        export(room_of(Ask))
