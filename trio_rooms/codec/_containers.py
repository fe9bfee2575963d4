"""Hooks for lists, tuples and str-keyed objects, built from the hooks of their items.

Structuring takes the fast path first and only on failure goes over the items
again, to collect every bad one with its index or key.
"""

# Hooks take any wire value.
# ruff: noqa: ANN401

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast, get_args, get_origin

from cattrs.errors import IterableValidationError

from ._failures import Invalid, index_note, shorten, show, validation_error
from ._hooks import Hook, HookFor, identity
from ._inspect import SEQUENCES, strip

__all__ = [
    "mapping_structure",
    "mapping_unstructure",
    "sequence_structure",
    "sequence_unstructure",
]


def sequence_structure(tp: Any, structure_hook: HookFor) -> Hook:
    """The structure hook of a ``list``, ``tuple`` or ``Sequence`` type ``tp``."""
    make = SEQUENCES[get_origin(tp)]
    args = get_args(tp)
    # Only a tuple type has fixed positions; a Sequence[T] is built as a tuple too.
    if get_origin(tp) is tuple and not (len(args) == 2 and args[1] is ...):
        return _fixed_tuple_structure(tp, [structure_hook(a) for a in args])
    item_type = args[0] if args else Any
    return _homogeneous_structure(tp, make, structure_hook(item_type), item_type)


def sequence_unstructure(tp: Any, unstructure_hook: HookFor) -> Hook:
    """The unstructure hook of a ``list``, ``tuple`` or ``Sequence`` type ``tp``."""
    args = get_args(tp)
    if get_origin(tp) is tuple and not (len(args) == 2 and args[1] is ...):
        hooks = [unstructure_hook(a) for a in args]
        if all(h is identity for h in hooks):
            return identity

        def unstructure_tuple(value: Sequence[Any]) -> list[Any]:
            return [h(v) for h, v in zip(hooks, value, strict=True)]

        return unstructure_tuple
    item = unstructure_hook(args[0] if args else Any)
    if item is identity:
        # orjson and msgpack both write lists and tuples of plain values as arrays.
        return identity

    def unstructure_sequence(value: Sequence[Any]) -> list[Any]:
        return [item(v) for v in value]

    return unstructure_sequence


def mapping_structure(tp: Any, structure_hook: HookFor) -> Hook:
    """The structure hook of a ``dict`` or ``Mapping`` type ``tp``, whose keys must be str."""
    key_type, value_type = get_args(tp) or (Any, Any)
    if strip(key_type) is not str:
        raise TypeError(f"unsupported mapping {tp!r}: keys must be str on the wire")
    return _str_keyed_structure(tp, structure_hook(value_type), value_type)


def mapping_unstructure(tp: Any, unstructure_hook: HookFor) -> Hook:
    """The unstructure hook of a ``dict`` or ``Mapping`` type ``tp``."""
    _key_type, value_type = get_args(tp) or (Any, Any)
    item = unstructure_hook(value_type)
    if item is identity:
        return identity

    def unstructure_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
        return {k: item(v) for k, v in value.items()}

    return unstructure_mapping


def _homogeneous_structure(tp: Any, make: type, hook: Hook, item_type: Any) -> Hook:
    def structure_sequence(value: Any, _type: Any = None) -> Any:
        if type(value) is not list:
            raise Invalid("expected a list")
        items = cast("list[Any]", value)
        try:
            return tuple([hook(v) for v in items]) if make is tuple else [hook(v) for v in items]
        except Exception:
            pass
        # Only on failure: go again, collecting every bad item with its index.
        errors: list[Exception] = []
        for i, v in enumerate(items):
            try:
                hook(v)
            except Exception as exc:
                errors.append(index_note(exc, i, item_type))
        raise validation_error(IterableValidationError, errors, tp)

    return structure_sequence


def _fixed_tuple_structure(tp: Any, hooks: list[Hook]) -> Hook:
    args = get_args(tp)
    size = len(hooks)

    def structure_tuple(value: Any, _type: Any = None) -> Any:
        items = cast("list[Any]", value)
        if type(value) is not list or len(items) != size:
            raise Invalid(f"expected a list of {size} items")
        result: list[Any] = []
        errors: list[Exception] = []
        for i, (hook, v) in enumerate(zip(hooks, items, strict=True)):
            try:
                result.append(hook(v))
            except Exception as exc:
                errors.append(index_note(exc, i, args[i]))
        if errors:
            raise validation_error(IterableValidationError, errors, tp)
        return tuple(result)

    return structure_tuple


def _str_keyed_structure(tp: Any, hook: Hook, value_type: Any) -> Hook:
    def structure_mapping(value: Any, _type: Any = None) -> Any:
        if type(value) is not dict:
            raise Invalid("expected an object")
        mapping = cast("dict[Any, Any]", value)
        try:
            # msgpack maps may have bytes keys even with strict_map_key.
            if all(type(k) is str for k in mapping):
                return {k: hook(v) for k, v in mapping.items()}
        except Exception:
            pass
        errors: list[Exception] = []
        for k, v in mapping.items():
            if type(k) is not str:
                errors.append(Invalid(f"expected str keys, got {show(k)}"))
                continue
            try:
                hook(v)
            except Exception as exc:
                errors.append(index_note(exc, shorten(k), value_type))
        raise validation_error(IterableValidationError, errors, tp)

    return structure_mapping
