"""Leaf hooks: ints, floats, strs, bools, None, literals and enums, checked exactly.

No coercion: the parsers only ever produce exact ``dict``, ``list``, ``str``,
``int``, ``float``, ``bool`` and ``None``, so the checks compare exact types, and
``bool``, a subclass of ``int``, does not pass for one. An int is accepted where a
float is expected.
"""

# Hooks take any wire value.
# ruff: noqa: ANN401

from __future__ import annotations

import enum
import math
from typing import Any, get_args

from ._failures import Invalid, one_of
from ._hooks import Hook, identity
from ._inspect import NoneType

__all__ = [
    "INLINE_GUARDS",
    "LITERAL_KINDS",
    "SCALAR_HOOKS",
    "enum_structure",
    "literal_structure",
    "none_structure",
    "unstructure_enum",
]


def _structure_int(value: Any, _type: Any = None) -> int:
    if type(value) is int:
        return value
    # orjson turns integer literals beyond 64 bits into floats instead of failing.
    if type(value) is float and value.is_integer() and not -(2**63) < value < 2**64:
        raise Invalid("integer out of 64-bit range")
    raise Invalid("expected int")


def _structure_float(value: Any, _type: Any = None) -> float:
    if type(value) is float:
        # JSON cannot carry NaN or infinities; msgpack can, but a message must
        # mean the same thing in both formats.
        if math.isfinite(value):
            return value
        raise Invalid("expected a finite float")
    if type(value) is int:
        return float(value)
    raise Invalid("expected float")


def _structure_str(value: Any, _type: Any = None) -> str:
    if type(value) is str:
        return value
    raise Invalid("expected str")


def _structure_bool(value: Any, _type: Any = None) -> bool:
    if type(value) is bool:
        return value
    raise Invalid("expected bool")


def _structure_none(value: Any, _type: Any = None) -> None:
    if value is not None:
        raise Invalid("expected null")


def none_structure(_tp: Any) -> Hook:
    return _structure_none


def _unstructure_float(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"cannot encode {value!r}: only finite floats go on the wire")
    return value


#: For a scalar hook, an expression (of the value ``{v}``) true when the hook would
#: return the value as it is: generated code tests it inline and calls the hook only
#: when it is false (to convert, or to fail). ``__isfinite`` is `math.isfinite`.
INLINE_GUARDS: dict[Hook, str] = {
    _structure_int: "type({v}) is int",
    _structure_float: "type({v}) is float and __isfinite({v})",
    _structure_str: "type({v}) is str",
    _structure_bool: "type({v}) is bool",
    _unstructure_float: "type({v}) is float and __isfinite({v})",
}

# Each scalar type with its structure and unstructure hooks.
SCALAR_HOOKS: tuple[tuple[type, Hook, Hook], ...] = (
    (int, _structure_int, identity),
    (float, _structure_float, _unstructure_float),
    (str, _structure_str, identity),
    (bool, _structure_bool, identity),
    (NoneType, _structure_none, identity),
)

# The types a literal's values may have (and the types of wire values compared
# with them).
LITERAL_KINDS: tuple[type, ...] = (str, int, bool, NoneType)


def literal_structure(tp: Any) -> Hook:
    values: tuple[object, ...] = get_args(tp)
    for v in values:
        if type(v) not in LITERAL_KINDS:
            raise TypeError(f"unsupported literal {tp!r}: only str, int, bool and None values")
    # Keyed by type too: True == 1, but a bool is not an int on the wire.
    allowed: set[tuple[type, object]] = {(type(v), v) for v in values}
    message = one_of(values)

    def structure_literal(value: Any, _type: Any = None) -> Any:
        kind: type[object] = value.__class__
        if kind in LITERAL_KINDS and (kind, value) in allowed:
            return value
        raise Invalid(message)

    return structure_literal


def enum_structure(tp: type[enum.Enum]) -> Hook:
    members = list(tp)
    for m in members:
        if type(m.value) not in (str, int):
            raise TypeError(f"unsupported enum {tp.__qualname__}: only str and int values")
    table: dict[tuple[type, object], enum.Enum] = {(type(m.value), m.value): m for m in members}
    message = one_of([m.value for m in members])

    def structure_enum(value: Any, _type: Any = None) -> Any:
        kind: type[object] = value.__class__
        if kind is str or kind is int:
            member = table.get((kind, value))
            if member is not None:
                return member
        raise Invalid(message)

    return structure_enum


def unstructure_enum(member: enum.Enum) -> object:
    return member.value
