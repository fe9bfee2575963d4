"""The wire model: what a value looks like on the wire, apart from how it is written down.

`_reader` builds it from Python annotations with the codec's rules; `_jsonschema`
and `_typescript` render it. Named definitions (attrs classes, enums) are referred
to by a `DefKey`, so recursive classes are plain references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Literal, TypeAlias, final

import attrs

__all__ = [
    "AnyOf",
    "ArrayOf",
    "Const",
    "DefKey",
    "EnumDef",
    "FieldDef",
    "JsonValue",
    "Nullable",
    "ObjectDef",
    "RecordOf",
    "Ref",
    "Route",
    "Scalar",
    "TupleOf",
    "WireType",
    "binary_definitions",
    "holds_bytes",
    "reached",
    "refs_of",
]

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
"""A value as JSON holds it."""

#: A named definition: an attrs class with the tag it carries (None: nested, no
#: tag), or an enum (tag None).
DefKey: TypeAlias = tuple[type, str | None]


@final
@attrs.frozen
class Scalar:
    """``int`` (64-bit), ``float`` (finite; an int is accepted), ``str``, ``bool``, ``null``.

    ``bytes`` is a base64 string in JSON (frames and HTTP bodies) and a bin in msgpack.
    """

    kind: Literal["int", "float", "str", "bool", "null", "bytes"]


@final
@attrs.frozen
class Const:
    """One of the ``Literal`` values, compared with their type (``True`` is not ``1``)."""

    values: tuple[str | int | bool | None, ...]


@final
@attrs.frozen
class Ref:
    """The named definition ``key``."""

    key: DefKey


@final
@attrs.frozen
class ArrayOf:
    """A list of any length."""

    item: WireType


@final
@attrs.frozen
class TupleOf:
    """A list of exactly ``len(items)`` items."""

    items: tuple[WireType, ...]


@final
@attrs.frozen
class RecordOf:
    """An object with any string keys."""

    value: WireType


@final
@attrs.frozen
class Nullable:
    """``inner`` or ``null``."""

    inner: WireType


@final
@attrs.frozen
class AnyOf:
    """One of ``members``; the codec tells them apart, so at most one fits a value."""

    members: tuple[WireType, ...]


WireType: TypeAlias = Scalar | Const | Ref | ArrayOf | TupleOf | RecordOf | Nullable | AnyOf


@final
@attrs.frozen
class FieldDef:
    """One field of an object as the codec reads and writes it.

    ``optional``: an ``X | None`` field, left out when None (never ``null``).
    ``has_default``: missing on input, it takes a value other than None, its
    default; ``default`` is that value on the wire when ``default_known`` (a
    factory that takes ``self`` has no fixed one).
    """

    wire: str
    type: WireType
    optional: bool
    has_default: bool
    default: JsonValue | None = None
    default_known: bool = False

    @property
    def required(self) -> bool:
        """Whether input must carry the field."""
        return not (self.optional or self.has_default)


@final
@attrs.frozen
class ObjectDef:
    """An attrs class: its fields, its ``"type"`` tag if it is a message, and strictness."""

    cls: type
    tag: str | None
    fields: tuple[FieldDef, ...]
    #: Keys that name no field are rejected (``forbid_extra_keys``).
    strict: bool


@final
@attrs.frozen
class EnumDef:
    """An enum, on the wire as its members' values."""

    cls: type
    values: tuple[str | int, ...]


@final
@attrs.frozen
class Route:
    """One HTTP route of a room: its JSON body and its JSON answer, when it has them."""

    method: str
    path: str
    body: WireType | None
    response: WireType | None

    @property
    def name(self) -> str:
        """``"GET /info"``."""
        return f"{self.method} {self.path}"


def refs_of(tp: WireType) -> list[DefKey]:
    """The definitions ``tp`` refers to directly, in order, each once."""
    found: list[DefKey] = []
    todo: list[WireType] = [tp]
    while todo:
        t = todo.pop()
        match t:
            case Ref(key=key):
                if key not in found:
                    found.append(key)
            case ArrayOf(item=inner) | RecordOf(value=inner) | Nullable(inner=inner):
                todo.append(inner)
            case TupleOf(items=members) | AnyOf(members=members):
                todo.extend(reversed(members))
            case Scalar() | Const():
                pass
    return found


def reached(roots: Sequence[WireType], defs: Mapping[DefKey, ObjectDef | EnumDef]) -> set[DefKey]:
    """Every definition ``roots`` reach, directly or through other definitions."""
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


def holds_bytes(tp: WireType, binary: Set[DefKey]) -> bool:
    """Whether values of ``tp`` may hold bytes; ``binary``: the definitions that may."""
    match tp:
        case Scalar(kind=kind):
            return kind == "bytes"
        case Ref(key=key):
            return key in binary
        case ArrayOf(item=inner) | RecordOf(value=inner) | Nullable(inner=inner):
            return holds_bytes(inner, binary)
        case TupleOf(items=members) | AnyOf(members=members):
            return any(holds_bytes(m, binary) for m in members)
        case Const():
            return False


def binary_definitions(defs: Mapping[DefKey, ObjectDef | EnumDef]) -> set[DefKey]:
    """The definitions whose values may hold bytes, through their fields at any depth."""
    binary: set[DefKey] = set()
    grew = True
    while grew:  # until no more: a class holds bytes if a field's class does
        grew = False
        for key, definition in defs.items():
            if key in binary or not isinstance(definition, ObjectDef):
                continue
            if any(holds_bytes(f.type, binary) for f in definition.fields):
                binary.add(key)
                grew = True
    return binary
