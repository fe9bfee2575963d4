"""Union hooks: dispatch on the kind of wire value, then tell attrs classes apart.

A union is accepted only if its members can be told apart on the wire: by the
kind of value (object, list, str, int, float, bool, null), and for several attrs
classes by a literal field (a tag) or else by a required key unique to each one.
Anything else is a ``TypeError`` when the codec is built, not a guess at run time.
"""

# Hooks take any wire value.
# ruff: noqa: ANN401

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast, get_args, get_origin

import attrs
from cattrs.errors import ClassValidationError

from ._failures import REQUIRED, Invalid, note, one_of, validation_error
from ._fields import WireField
from ._hooks import Hook, HookFor, identity
from ._inspect import (
    MAPPINGS,
    MISSING,
    SEQUENCES,
    NoneType,
    is_attrs,
    is_literal,
    is_union,
    optional_arg,
    strip,
    type_name,
    wire_kinds,
)
from ._scalars import LITERAL_KINDS

__all__ = ["discriminator", "members_by_kind", "union_structure", "union_unstructure"]

# What ``expected ...`` calls each kind of wire value.
_KIND_NAMES: dict[type, str] = {
    dict: "object",
    list: "list",
    str: "str",
    bytes: "bytes",
    int: "int",
    float: "float",
    bool: "bool",
    NoneType: "null",
}


def union_structure(
    tp: Any, structure_hook: HookFor, fields_of: Callable[[Any], list[WireField]]
) -> Hook:
    """The structure hook of the union ``tp``.

    Raises:
        TypeError: Two members of ``tp`` cannot be told apart on the wire.
    """
    inner = optional_arg(tp)
    if inner is not MISSING and not is_union(inner):
        hook = structure_hook(inner)

        def structure_optional(value: Any, _type: Any = None) -> Any:
            return None if value is None else hook(value)

        return structure_optional
    return _by_kind_structure(tp, structure_hook, fields_of)


def union_unstructure(tp: Any, unstructure_hook: HookFor) -> Hook:
    """The unstructure hook of the union ``tp``: by the Python class of the value."""
    members = [m for m in get_args(tp) if m is not NoneType]
    hooks = [unstructure_hook(m) for m in members]
    if all(h is identity for h in hooks):
        return identity
    table: dict[type, Hook] = {}
    for member, hook in zip(members, hooks, strict=True):
        stripped = strip(member)
        origin = get_origin(stripped) or stripped
        kinds = [list, tuple] if origin in SEQUENCES else [dict] if origin in MAPPINGS else [origin]
        for kind in kinds:
            table[kind] = hook

    def unstructure_union(value: Any) -> Any:
        hook = table.get(value.__class__)
        return value if hook is None else hook(value)

    return unstructure_union


def members_by_kind(tp: Any) -> dict[type, list[Any]]:
    """The members of the union ``tp`` that each kind of wire value is structured by.

    More than one member for a kind is allowed only for ``dict``, if all are attrs
    classes (told apart by `discriminator` or by keys).
    """
    by_kind: dict[type, list[Any]] = {}
    for member in get_args(tp):
        for kind in wire_kinds(member):
            by_kind.setdefault(kind, []).append(member)
    # A member that takes ints as they are wins over float, which would convert.
    if len(by_kind.get(int, ())) > 1:
        by_kind[int] = [m for m in by_kind[int] if strip(m) is not float]
    return by_kind


def discriminator(fields: list[dict[str, WireField]]) -> str | None:
    """The wire name of the literal field that tells these classes apart, if any.

    ``fields`` holds each class's fields by wire name. The first common field (in
    sorted order) whose type is a ``Literal`` in every class, with no value shared.
    """
    common = set(fields[0]).intersection(*fields[1:])
    for wire in sorted(common):
        types_ = [strip(fs[wire].type) for fs in fields]
        if not all(is_literal(t) for t in types_):
            continue
        values = {(v.__class__, v) for t in types_ for v in get_args(t)}
        if len(values) == sum(len(get_args(t)) for t in types_):
            return wire
    return None


def _by_kind_structure(
    tp: Any, structure_hook: HookFor, fields_of: Callable[[Any], list[WireField]]
) -> Hook:
    by_kind = members_by_kind(tp)
    table: dict[type, Hook] = {}
    for kind, members in by_kind.items():
        if len(members) == 1:
            table[kind] = structure_hook(members[0])
        elif kind is dict and all(is_attrs(strip(m)) for m in members):
            table[kind] = _attrs_structure([strip(m) for m in members], structure_hook, fields_of)
        else:
            shown = " | ".join(type_name(m) for m in members)
            raise TypeError(f"cannot tell apart {shown} on the wire (in {tp!r})")
    # A bytes member takes strs too (base64 in JSON): it is named once, as bytes.
    kinds = [k for k in table if not (k is str and table[k] is table.get(bytes))]
    expected = "expected " + " or ".join(_KIND_NAMES[k] for k in kinds)

    def structure_union(value: Any, _type: Any = None) -> Any:
        hook = table.get(value.__class__)
        if hook is None:
            raise Invalid(expected)
        return hook(value)

    return structure_union


def _attrs_structure(
    classes: list[type], structure_hook: HookFor, fields_of: Callable[[Any], list[WireField]]
) -> Hook:
    """Tell attrs classes apart by a literal field, else by a unique required key."""
    fields = [{f.wire: f for f in fields_of(cls)} for cls in classes]
    hooks = [structure_hook(cls) for cls in classes]
    wire = discriminator(fields)
    if wire is None:
        return _unique_key_structure(classes, fields, hooks)
    table: dict[tuple[type, object], Hook] = {}
    for fs, hook in zip(fields, hooks, strict=True):
        for value in get_args(strip(fs[wire].type)):
            table[value.__class__, value] = hook
    return _discriminated_structure(classes, wire, table)


def _discriminated_structure(
    classes: list[type], wire: str, table: dict[tuple[type, object], Hook]
) -> Hook:
    values = [v for _, v in table]
    message = one_of(values)

    def structure_discriminated(value: Any, _type: Any = None) -> Any:
        if type(value) is not dict:
            raise Invalid("expected an object")
        obj = cast("dict[Any, Any]", value)
        key: object = obj.get(wire, MISSING)
        if key is MISSING:
            error = Invalid(REQUIRED)
        else:
            kind: type[object] = key.__class__
            hook = table.get((kind, key)) if kind in LITERAL_KINDS else None
            if hook is not None:
                return hook(value)
            error = Invalid(message)
        note(error, wire, None)
        raise validation_error(ClassValidationError, [error], classes[0])

    return structure_discriminated


def _unique_key_structure(
    classes: list[type], fields: list[dict[str, WireField]], hooks: list[Hook]
) -> Hook:
    """cattrs' unique-key disambiguation, on wire names."""
    required = [
        {w for w, f in fs.items() if f.default is attrs.NOTHING and not f.optional} for fs in fields
    ]
    pinned: dict[str, Hook] = {}
    remaining = list(range(len(classes)))
    progress = True
    while progress:
        progress = False
        for i in list(remaining):
            others = set[str]().union(*(set(fields[j]) for j in remaining if j != i))
            unique = sorted(required[i] - others)
            if unique:
                pinned[unique[0]] = hooks[i]
                remaining.remove(i)
                progress = True
    if len(remaining) > 1:
        shown = ", ".join(classes[i].__qualname__ for i in remaining)
        raise TypeError(f"cannot tell apart {shown} on the wire: no unique required field")
    fallback = hooks[remaining[0]] if remaining else None
    keys = ", ".join(repr(k) for k in pinned)
    names = ", ".join(c.__qualname__ for c in classes)

    def structure_by_key(value: Any, _type: Any = None) -> Any:
        if type(value) is not dict:
            raise Invalid("expected an object")
        for key, hook in pinned.items():
            if key in value:
                return hook(value)
        if fallback is None:
            raise Invalid(f"expected one of {names}: none of the keys {keys} found")
        return fallback(value)

    return structure_by_key
