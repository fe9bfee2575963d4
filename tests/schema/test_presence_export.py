"""The export of a room with presence: its ``$presence`` frames, both formats, both contracts."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Literal

import attrs
import msgpack
import orjson
import pytest

import trio_rooms
from trio_rooms._wire import (
    LibraryFrame,
    PresenceDiffFrame,
    PresenceStateFrame,
    PresenceWireMeta,
    encode_library_frame,
)
from trio_rooms.codec import WireFormat
from trio_rooms.codec._values import ValueCodec
from trio_rooms.schema import export

from .node_contract import open_validator
from .presence_app import Member, Place, PresenceRoom, Status
from .test_export import Plain, room_of

_MEMBERS = [
    Member(display_name="ann", status=Status.ONLINE),
    Member(display_name="bob", status=Status.AWAY, place=Place("hall", 3), avatar=b"\x00\xff"),
]


def _wire(wire: WireFormat, *metas: Member) -> list[object]:
    codec = ValueCodec(Member, wire, camel_case=True, forbid_extra_keys=True)
    return [codec.to_wire(meta) for meta in metas]


def _frame(wire: WireFormat, content: object | LibraryFrame) -> str:
    """``content`` (a library frame as the server encodes it, or a map) as the validator
    takes a frame: JSON text, or msgpack in base64."""
    if isinstance(content, PresenceStateFrame | PresenceDiffFrame):
        data = encode_library_frame(wire, content)
    else:
        data = orjson.dumps(content) if wire == "json" else msgpack.packb(content)
    return data.decode() if wire == "json" else base64.b64encode(data).decode()


def test_a_room_without_presence_exports_no_presence() -> None:
    """No presence document and no ``presence`` in the contract: the export is as it was."""
    contract = export(room_of(Plain))
    assert contract.presence is None
    assert contract.msgpack_presence is None
    assert "presence" not in contract.typescript
    assert not any("presence" in name for name in contract.files())


def test_each_contract_names_the_metadata_schema_of_its_format() -> None:
    """The JSON contract names the meta, the msgpack one its twin; each document its own."""
    contract = export(PresenceRoom)
    assert "  presence: Member,\n" in contract.typescript
    assert "  presence: MemberMsgpack,\n" in contract.typescript
    documents: Any = (contract.presence, contract.msgpack_presence)
    assert [sorted(doc["$defs"]) for doc in documents] == [
        ["Member", "Place", "Status"],
        ["MemberMsgpack", "Place", "Status"],
    ]
    assert documents[1]["$defs"]["MemberMsgpack"]["properties"]["avatar"] == {"x-msgpack": "bin"}


def test_a_meta_the_schema_cannot_describe_is_refused() -> None:
    """A presence metadata type the codec takes but no schema can say is a TypeError naming it."""

    @attrs.frozen
    class Loose:
        amount: Literal[1] | float

    class LooseRoom(room_of(Plain)):
        presence = trio_rooms.Presence(Loose)

    with pytest.raises(TypeError, match=r"Loose\.amount: .* cannot be described"):
        export(LooseRoom)


@pytest.mark.parametrize("wire", ["json", "msgpack"])
def test_the_servers_presence_frames_pass_and_broken_ones_fail(
    node_dir: Path, tmp_path: Path, wire: WireFormat
) -> None:
    """States and diffs as the server writes them pass zod and JSON Schema; a bad meta fails
    both, and a frame of the wrong shape fails JSON Schema."""
    contract = export(PresenceRoom)
    for name, text in contract.files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    document = "presence.schema.json" if wire == "json" else "presence.msgpack.schema.json"
    ann, bob = _wire(wire, *_MEMBERS)
    good = [
        PresenceStateFrame({}),
        PresenceStateFrame({"ann": [PresenceWireMeta("a1", ann), PresenceWireMeta("a2", bob)]}),
        PresenceDiffFrame({"bob": [PresenceWireMeta("b1", bob)]}, {}),
        PresenceDiffFrame({}, {"ann": [PresenceWireMeta("a1", ann)]}),
    ]
    wrong_type = {**_as_dict(ann), "status": "gone"}
    extra_key = {**_as_dict(ann), "shoe": 1}
    bad_meta: list[object] = [
        {"$presence": {"state": {"ann": [{"ref": "a1", "meta": wrong_type}]}}},
        {"$presence": {"joins": {}, "leaves": {"ann": [{"ref": "a1", "meta": extra_key}]}}},
        {"$presence": {"state": {"ann": [{"ref": "a1", "meta": {"status": "online"}}]}}},
    ]
    bad_shape: list[object] = [
        {"$presence": {"state": {}, "joins": {}}},
        {"$presence": {"joins": {}}},
        {"$presence": {"state": {"ann": [{"ref": 1, "meta": ann}]}}},
        {"$presence": {"state": {"ann": [{"ref": "a1", "meta": ann, "at": 0}]}}},
        {"$presence": {"state": {}}, "type": "said"},
    ]
    with open_validator(node_dir, tmp_path) as validator:
        for content in good:
            verdict = validator.check("presence", document, wire, _frame(wire, content))
            assert (verdict.zod, verdict.json_schema) == (True, True), (content, verdict)
        for content in bad_meta:
            verdict = validator.check("presence", document, wire, _frame(wire, content))
            assert (verdict.zod, verdict.json_schema) == (False, False), (content, verdict)
        for content in bad_shape:
            verdict = validator.check("presence", document, wire, _frame(wire, content))
            assert not verdict.json_schema, (content, verdict)


def _as_dict(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return dict(value)  # pyright: ignore[reportUnknownArgumentType] - a wire map
