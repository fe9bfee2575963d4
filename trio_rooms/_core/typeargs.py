"""Read the type arguments a subclass gave to a generic base, at class creation.

``class ChatSession(Session[ChatData, ServerMsg, ClientMsg])`` keeps its message
unions in ``__orig_bases__``; generic intermediate classes are followed by
substituting their own parameters.
"""

from __future__ import annotations

import types
import typing
from typing import TypeVar, get_args, get_origin

__all__ = ["is_concrete", "resolve_type_args", "union_members"]


def resolve_type_args(cls: type, base: type) -> tuple[object, ...] | None:
    """The arguments ``cls`` binds to ``base``'s type parameters, or None if it binds none.

    An argument that is still a `TypeVar` means ``cls`` is itself generic.
    """
    for orig in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(orig) or orig
        if origin is base:
            return get_args(orig) or None
        if isinstance(origin, type) and issubclass(origin, base):
            inner = resolve_type_args(origin, base)
            if inner is None:
                continue
            params: tuple[object, ...] = getattr(origin, "__parameters__", ())
            substitution = dict(zip(params, get_args(orig), strict=False))
            return tuple(substitution.get(arg, arg) for arg in inner)
    for parent in cls.__bases__:
        if parent is not base and issubclass(parent, base):
            return resolve_type_args(parent, base)
    return None


def is_concrete(args: tuple[object, ...]) -> bool:
    """True when no argument is an unbound `TypeVar`."""
    return not any(isinstance(arg, TypeVar) for arg in args)


def union_members(tp: object) -> tuple[object, ...]:
    """``A | B`` -> ``(A, B)``; a lone ``A`` -> ``(A,)``."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        return get_args(tp)
    return (tp,)
