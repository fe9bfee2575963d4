"""The wire model as JSON Schema (draft 2020-12) documents, one per root.

Each document holds, in ``$defs`` sorted by name, exactly the definitions its
root reaches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    refs_of,
)

__all__ = ["DIALECT", "document"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# The codec's integers: what orjson and msgpack carry, int64 and uint64.
_INT: dict[str, JsonValue] = {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1}
_SCALARS: dict[str, dict[str, JsonValue]] = {
    "int": _INT,
    "float": {"type": "number"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "null": {"type": "null"},
}


def document(
    title: str,
    root: WireType | list[Ref],
    defs: Mapping[DefKey, ObjectDef | EnumDef],
    names: Mapping[DefKey, str],
) -> dict[str, JsonValue]:
    """A document for ``root``; a list of message references becomes their ``oneOf``."""
    renderer = _Renderer(names)
    doc: dict[str, JsonValue] = {"$schema": DIALECT, "title": title}
    if isinstance(root, list):
        doc["oneOf"] = [renderer.type(r) for r in root]
        reached = _reached(root, defs)
    else:
        doc.update(renderer.type(root))
        reached = _reached([root], defs)
    doc["$defs"] = {
        names[key]: renderer.definition(names[key], defs[key])
        for key in sorted(reached, key=lambda k: names[k])
    }
    return doc


def _reached(roots: Sequence[WireType], defs: Mapping[DefKey, ObjectDef | EnumDef]) -> set[DefKey]:
    seen: set[DefKey] = set()
    todo = [key for root in roots for key in refs_of(root)]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        definition = defs[key]
        if isinstance(definition, ObjectDef):
            todo.extend(k for f in definition.fields for k in refs_of(f.type))
    return seen


class _Renderer:
    def __init__(self, names: Mapping[DefKey, str]) -> None:
        self._names = names

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
            if f.default_known:
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
