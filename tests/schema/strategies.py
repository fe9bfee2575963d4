"""Hypothesis strategies for values of annotated types, read from the annotations alone.

Independent of the export under test: they follow the Python types, and the codec
turns the values into frames. Integers stay within JavaScript's safe range (zod's
``z.int()``; ``test_export`` pins what happens beyond it).
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NewType, get_args, get_origin

import attrs
from hypothesis import strategies as st

SAFE_INT = 2**53 - 1
_MAX_DEPTH = 3


def _strip(tp: Any) -> Any:
    while True:
        if get_origin(tp) is typing.Annotated:
            tp = get_args(tp)[0]
        elif isinstance(tp, NewType):
            tp = tp.__supertype__
        else:
            return tp


def values(tp: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of the annotation ``tp``; containers get shorter as they nest."""
    tp = _strip(tp)
    deep = depth < _MAX_DEPTH  # deeper, containers are empty: recursive classes end
    origin = get_origin(tp)
    if tp is None or tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-SAFE_INT, SAFE_INT)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return st.text(max_size=8)
    if tp is bytes:
        return st.binary(max_size=8)
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if origin in (typing.Union, types.UnionType):
        return st.one_of([values(a, depth) for a in get_args(tp)])
    if origin is list:
        return st.lists(values(get_args(tp)[0], depth + 1), max_size=3) if deep else st.just([])
    if origin in (tuple, Sequence):
        args = get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is ...):
            return st.tuples(*(values(a, depth + 1) for a in args))
        if not deep:
            return st.just(())
        return st.lists(values(args[0], depth + 1), max_size=3).map(tuple)
    if origin in (dict, Mapping):
        if not deep:
            return st.just({})
        return st.dictionaries(st.text(max_size=5), values(get_args(tp)[1], depth + 1), max_size=3)
    if isinstance(tp, type) and attrs.has(tp):
        return instances(tp, depth + 1)
    raise TypeError(f"no strategy for {tp!r}")


def instances(cls: type, depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances of the attrs class ``cls``, every field given."""
    attrs.resolve_types(cls)
    fields = [a for a in attrs.fields(cls) if a.init]
    return st.builds(cls, **{a.alias: values(a.type, depth) for a in fields})
