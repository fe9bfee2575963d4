"""The wire model as JSON Schema (draft 2020-12) documents, one per root.

Each document holds, in ``$defs`` sorted by name, exactly the definitions its
root reaches. JSON carries bytes as base64 strings, described exactly (the
codec's strict pattern). JSON Schema has no bytes type, so a document of msgpack
frames says ``{"x-msgpack": "bin"}``, a keyword of this library's own: a
validator taught it (ajv: ``ajv.addKeyword({keyword: "x-msgpack", validate: (_,
value) => value instanceof Uint8Array})``) checks it, any other ignores it.

The server's document of a room with requests also says which message answers each
request: ``"x-trio-rooms-replies": {"getScore": {"$ref": "#/$defs/Score"}}``, by the
request's tag (a ``oneOf`` for a union of replies). The reply frame is that message
with the request's ``"$rid"`` added, which the message's own schema does not list.

A room with presence has a document of its ``$presence`` frames too (`presence_document`):
the state, or a diff, each key's presences a list of ``{"ref", "meta"}`` with the room's
metadata class as ``meta``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

from ..codec._bytes import BytesAs
from ._model import (
    AnyOf,
    ArrayOf,
    Const,
    DefKey,
    EnumDef,
    JsonValue,
    Nullable,
    ObjectDef,
    RecordOf,
    Ref,
    Scalar,
    TupleOf,
    WireType,
    binary_definitions,
    holds_bytes,
    reached,
)

__all__ = ["BASE64_PATTERN", "DIALECT", "REPLIES", "document", "presence_document"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: The keyword of a server document that maps each request's tag to its reply.
REPLIES = "x-trio-rooms-replies"

# The codec's integers: what orjson and msgpack carry, int64 and uint64.
_INT: dict[str, JsonValue] = {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1}
_SCALARS: dict[str, dict[str, JsonValue]] = {
    "int": _INT,
    "float": {"type": "number"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "null": {"type": "null"},
}
# The codec's base64 (`codec._bytes`): standard alphabet, padded.
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_BYTES: dict[BytesAs, dict[str, JsonValue]] = {
    "base64": {"type": "string", "contentEncoding": "base64", "pattern": BASE64_PATTERN},
    "bin": {"x-msgpack": "bin"},
}


def document(
    title: str,
    root: WireType | list[Ref],
    defs: Mapping[DefKey, ObjectDef | EnumDef],
    names: Mapping[DefKey, str],
    bytes_as: BytesAs = "base64",
    replies: Sequence[tuple[str, list[Ref]]] = (),
) -> dict[str, JsonValue]:
    """A document for ``root``; a list of message references becomes their ``oneOf``.

    ``replies``: each request's tag and its reply classes, among ``root``'s messages.
    """
    renderer = _Renderer(names, bytes_as, binary_definitions(defs))
    doc: dict[str, JsonValue] = {"$schema": DIALECT, "title": title}
    if isinstance(root, list):
        doc["oneOf"] = [renderer.type(r) for r in root]
        if replies:
            doc[REPLIES] = {
                tag: renderer.type(refs[0])
                if len(refs) == 1
                else {"oneOf": [renderer.type(r) for r in refs]}
                for tag, refs in replies
            }
        keys = reached(root, defs)
    else:
        doc.update(renderer.type(root))
        keys = reached([root], defs)
    doc["$defs"] = {
        names[key]: renderer.definition(names[key], defs[key])
        for key in sorted(keys, key=lambda k: names[k])
    }
    return doc


def presence_document(
    title: str,
    meta: Ref,
    defs: Mapping[DefKey, ObjectDef | EnumDef],
    names: Mapping[DefKey, str],
    bytes_as: BytesAs = "base64",
) -> dict[str, JsonValue]:
    """The document of the ``$presence`` frames of a room whose metadata class is ``meta``.

    As strict as the clients' parsers (`trio_rooms._wire`): exactly the keys named.
    """
    renderer = _Renderer(names, bytes_as, binary_definitions(defs))
    presence: dict[str, JsonValue] = {
        "type": "object",
        "properties": {"ref": {"type": "string"}, "meta": renderer.type(meta)},
        "required": ["ref", "meta"],
        "additionalProperties": False,
    }
    metas: dict[str, JsonValue] = {
        "type": "object",
        "additionalProperties": {"type": "array", "items": presence},
    }

    def exactly(*keys: str) -> dict[str, JsonValue]:
        return {
            "type": "object",
            "properties": dict.fromkeys(keys, metas),
            "required": list(keys),
            "additionalProperties": False,
        }

    keys = reached([meta], defs)
    return {
        "$schema": DIALECT,
        "title": title,
        "type": "object",
        "properties": {"$presence": {"oneOf": [exactly("state"), exactly("joins", "leaves")]}},
        "required": ["$presence"],
        "additionalProperties": False,
        "$defs": {
            names[key]: renderer.definition(names[key], defs[key])
            for key in sorted(keys, key=lambda k: names[k])
        },
    }


class _Renderer:
    def __init__(self, names: Mapping[DefKey, str], bytes_as: BytesAs, binary: Set[DefKey]) -> None:
        self._names = names
        self._bytes_as: BytesAs = bytes_as
        self._binary = binary

    def definition(self, name: str, definition: ObjectDef | EnumDef) -> dict[str, JsonValue]:
        if isinstance(definition, EnumDef):
            return {"title": name, "enum": list(definition.values)}
        properties: dict[str, JsonValue] = {}
        required: list[JsonValue] = []
        if definition.tag is not None:
            properties["type"] = {"const": definition.tag}
            required.append("type")
        for f in definition.fields:
            prop = self.type(f.type)
            # A default with bytes is written as JSON writes it: no bin to show.
            if f.default_known and not (
                self._bytes_as == "bin" and holds_bytes(f.type, self._binary)
            ):
                prop = {**prop, "default": f.default}
            properties[f.wire] = prop
            if f.required:
                required.append(f.wire)
        result: dict[str, JsonValue] = {"title": name, "type": "object", "properties": properties}
        if required:
            result["required"] = required
        if definition.strict:
            result["additionalProperties"] = False
        return result

    def type(self, tp: WireType) -> dict[str, JsonValue]:
        match tp:
            case Scalar(kind="bytes"):
                return dict(_BYTES[self._bytes_as])
            case Scalar(kind=kind):
                return dict(_SCALARS[kind])
            case Const(values=(value,)):
                return {"const": value}
            case Const(values=values):
                return {"enum": list(values)}
            case Ref(key=key):
                return {"$ref": f"#/$defs/{self._names[key]}"}
            case ArrayOf(item=item):
                return {"type": "array", "items": self.type(item)}
            case TupleOf(items=()):
                return {"type": "array", "maxItems": 0}
            case TupleOf(items=items):
                prefix: list[JsonValue] = [self.type(t) for t in items]
                return {
                    "type": "array",
                    "prefixItems": prefix,
                    "minItems": len(items),
                    "maxItems": len(items),
                }
            case RecordOf(value=value):
                return {"type": "object", "additionalProperties": self.type(value)}
            case Nullable(inner=inner):
                return {"anyOf": [self.type(inner), {"type": "null"}]}
            case AnyOf(members=members):
                return {"anyOf": [self.type(m) for m in members]}
