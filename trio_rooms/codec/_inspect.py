"""What a type annotation is, and which decoded wire values can stand for it.

Pure functions of annotations (``int``, ``list[Item]``, ``Literal["a"]``, a
``NewType``...), used to pick hooks and to check unions when a codec is built.
"""

# Annotations are arbitrary objects, so they are typed ``Any`` here; none of it
# reaches a public signature.
# ruff: noqa: ANN401

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

import attrs

__all__ = [
    "MAPPINGS",
    "MISSING",
    "SCALARS",
    "SEQUENCES",
    "NoneType",
    "is_annotated",
    "is_attrs",
    "is_enum",
    "is_literal",
    "is_mapping",
    "is_newtype",
    "is_none",
    "is_sequence",
    "is_union",
    "optional_arg",
    "strip",
    "type_name",
    "wire_kinds",
]

NoneType = type(None)
# Absence (of a key, of a non-None union member), where None is a real value.
MISSING: Any = object()

SCALARS: tuple[Any, ...] = (int, float, str, bool, NoneType)
# Sequence origins, and what each one is built as.
SEQUENCES: dict[Any, type] = {list: list, tuple: tuple, Sequence: tuple}
MAPPINGS: tuple[Any, ...] = (dict, Mapping)


def is_none(tp: Any) -> bool:
    return tp is None


def is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def is_attrs(tp: Any) -> bool:
    return isinstance(tp, type) and attrs.has(tp)


def is_newtype(tp: Any) -> bool:
    return isinstance(tp, typing.NewType)


def is_annotated(tp: Any) -> bool:
    return get_origin(tp) is typing.Annotated


def is_sequence(tp: Any) -> bool:
    return get_origin(tp) in SEQUENCES


def is_mapping(tp: Any) -> bool:
    return get_origin(tp) in MAPPINGS


def is_literal(tp: Any) -> bool:
    return get_origin(tp) is Literal


def type_name(tp: Any) -> str:
    """``tp`` as error messages show it."""
    return getattr(tp, "__name__", None) or repr(tp)


def strip(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and ``NewType`` wrappers."""
    while True:
        if is_annotated(tp):
            tp = get_args(tp)[0]
        elif is_newtype(tp):
            tp = tp.__supertype__
        else:
            return tp


def wire_kinds(tp: Any) -> set[type]:
    """The Python types of decoded wire values that ``tp`` may be built from."""
    tp = strip(tp)
    if tp is float:
        return {float, int}
    if tp in (int, str, bool, NoneType, None):
        return {NoneType if tp is None else tp}
    if tp is bytes:
        # A str in JSON (base64), a bin in msgpack: a union means the same in both.
        return {str, bytes}
    if is_literal(tp):
        return {type(v) for v in get_args(tp)}
    if is_enum(tp):
        return {type(m.value) for m in tp}
    if is_sequence(tp):
        return {list}
    if is_mapping(tp) or is_attrs(tp):
        return {dict}
    raise TypeError(f"unsupported type in a union: {tp!r}")


def optional_arg(tp: Any) -> Any:
    """``X`` if ``tp`` is ``X | None`` (with ``X`` not ``None``), else ``MISSING``."""
    if is_union(tp):
        args = [a for a in get_args(tp) if a is not NoneType]
        if len(args) < len(get_args(tp)):
            # ``|`` cannot join a run-time tuple of types; ``Union[...]`` can.
            return Union[tuple(args)] if len(args) > 1 else args[0]  # noqa: UP007
    return MISSING
