"""``MessageCheck``: whether a message about to be sent matches its class's annotations.

Encoding trusts the annotations: ``Said(user_id=123)`` with ``user_id: str`` would go
out as ``{"userId": 123}``, for the other end (our decoder, zod) to refuse. The check
is generated once per class, like the codec's hooks (`_codegen`): one boolean
expression per field over exact types, with no allocation. Only when it fails does a
slow walk look again, with subclasses allowed (a ``StrEnum`` member is a ``str``),
and find every mismatch with its Python and wire paths.
"""

# Annotations and values are arbitrary objects.
# ruff: noqa: ANN401

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, final, get_args, get_origin

from ._base import MsgT
from ._failures import shorten
from ._fields import WireField, wire_fields
from ._inspect import (
    NoneType,
    is_attrs,
    is_enum,
    is_literal,
    is_mapping,
    is_sequence,
    is_union,
    strip,
    type_name,
)

__all__ = ["MessageCheck"]

_MAX_ERRORS = 3
_Check = Callable[[Any], bool]


@final
class MessageCheck(Generic[MsgT]):
    """Checks that messages of the given classes hold what their annotations say.

    ::

        check = MessageCheck(Said, Left)
        check(Said(user_id=123, text="hi"))
        # TypeError: Said.user_id: expected str, got int @ $.userId

    Every kind of field the codecs carry is checked: scalars (a ``bool`` is not an
    ``int``; an ``int`` is a ``float``; ``bytes`` is exactly ``bytes``), ``X | None``,
    ``Literal``, enums, nested attrs classes and unions of them, lists, tuples and
    str-keyed dicts. Values are not checked against attrs validators (those ran when
    the message was made) nor for range (encoding refuses integers beyond 64 bits and
    non-finite floats).

    Args:
        *classes: The message classes.
        camel_case: Whether the wire names are in lowerCamelCase, for the paths.

    Raises:
        TypeError: A class holds a type the wire cannot carry.
    """

    __slots__ = ("_builder", "_classes", "_fast")

    def __init__(self, *classes: type[MsgT], camel_case: bool = True) -> None:
        self._builder = _Builder(camel_case)
        self._fast: dict[type, _Check] = {cls: self._builder.check_of(cls) for cls in classes}
        self._classes = classes

    def __call__(self, message: MsgT) -> None:
        """Return if ``message`` matches its annotations, else raise.

        Raises:
            TypeError: ``message`` is not an instance of one of the classes, or some of
                its fields do not match their annotations; the message names each one
                (``Said.user_id: expected str, got int @ $.userId``).
        """
        fast = self._fast.get(type(message))
        if fast is None:
            names = ", ".join(cls.__qualname__ for cls in self._classes)
            raise TypeError(f"{type(message).__qualname__} is not one of the messages {names}")
        try:
            if fast(message):
                return
        except Exception:  # an unhashable value in a Literal field, say: walk it
            pass
        cls = type(message)
        errors: list[str] = []
        self._builder.walk(cls, message, cls.__qualname__, "$", errors)
        if errors:
            text = "; ".join(errors[:_MAX_ERRORS])
            if len(errors) > _MAX_ERRORS:
                text += f"; and {len(errors) - _MAX_ERRORS} more"
            raise TypeError(text)


def _got(value: object) -> str:
    return "None" if value is None else type(value).__qualname__


def _kinds(literal: Any) -> set[type]:
    values: tuple[object, ...] = get_args(literal)
    return {type(v) for v in values}


def _kind_of(tp: Any) -> type | tuple[type, ...] | None:
    """The Python types a value of ``tp`` has on the outside; None: any (a union)."""
    tp = strip(tp)
    if tp is None or tp is NoneType:
        return NoneType
    if tp is float:
        return (int, float)
    if is_literal(tp):
        return tuple(_kinds(tp))
    if is_sequence(tp):
        origin = get_origin(tp)
        return list if origin is list else tuple if origin is tuple else (list, tuple)
    if is_mapping(tp):
        return dict if get_origin(tp) is dict else Mapping
    if isinstance(tp, type):
        return tp
    return None


class _Builder:
    """Generates the fast checks of attrs classes and walks values when one fails."""

    def __init__(self, camel_case: bool) -> None:
        self._camel_case = camel_case
        self._checks: dict[type, _Check] = {}
        self._fields: dict[type, list[WireField]] = {}
        self._globs: dict[str, Any] = {"__checks": self._checks}
        self._names: dict[int, str] = {}

    def fields(self, cls: type) -> list[WireField]:
        fields = self._fields.get(cls)
        if fields is None:
            fields = self._fields[cls] = wire_fields(cls, camel_case=self._camel_case)
        return fields

    def check_of(self, cls: type) -> _Check:
        """The fast check of the attrs class ``cls``: True if every field matches exactly."""
        check = self._checks.get(cls)
        if check is not None:
            return check
        # Registered before its fields are looked at: a recursive class finds itself
        # (the call goes through ``__checks``, so it gets the real function later).
        self._checks[cls] = _unbuilt
        exprs = [self._expr(f.type, f"v.{f.name}", 0) for f in self.fields(cls)]
        source = "def check(v):\n  return " + (" and ".join(exprs) if exprs else "True")
        namespace = dict(self._globs)
        exec(compile(source, f"<check {cls.__qualname__}>", "exec"), namespace)
        check = self._checks[cls] = namespace["check"]
        return check

    def _global(self, value: object) -> str:
        name = self._names.get(id(value))
        if name is None:
            name = self._names[id(value)] = f"__g{len(self._names)}"
            self._globs[name] = value
        return name

    def _expr(self, tp: Any, var: str, depth: int) -> str:
        """A boolean expression: the value ``var`` is exactly of type ``tp``."""
        tp = strip(tp)
        if tp is None or tp is NoneType:
            return f"{var} is None"
        if tp is float:
            return f"(type({var}) is float or type({var}) is int)"
        if tp in (int, str, bool, bytes):
            return f"type({var}) is {tp.__name__}"
        if is_literal(tp):
            values: tuple[object, ...] = get_args(tp)
            allowed = frozenset((type(v), v) for v in values)
            return f"(type({var}), {var}) in {self._global(allowed)}"
        if is_enum(tp):
            return f"type({var}) is {self._global(tp)}"
        if is_attrs(tp):
            self.check_of(tp)
            cls = self._global(tp)
            return f"(type({var}) is {cls} and __checks[{cls}]({var}))"
        if is_union(tp):
            return "(" + " or ".join(self._expr(m, var, depth) for m in get_args(tp)) + ")"
        item = f"i{depth}"
        if is_sequence(tp):
            args = get_args(tp)
            origin = get_origin(tp)
            if origin is tuple and not (len(args) == 2 and args[1] is ...):
                items = [self._expr(a, f"{var}[{i}]", depth + 1) for i, a in enumerate(args)]
                return (
                    f"(type({var}) is tuple and len({var}) == {len(args)}"
                    + "".join(f" and {e}" for e in items)
                    + ")"
                )
            kind = {list: "list", tuple: "tuple"}.get(origin)
            outer = f"type({var}) is {kind}" if kind else f"type({var}) in (list, tuple)"
            inner = self._expr(args[0], item, depth + 1)
            return f"({outer} and all({inner} for {item} in {var}))"
        if is_mapping(tp):
            _, value_type = get_args(tp)
            inner = self._expr(value_type, item, depth + 1)
            key = f"k{depth}"
            return (
                f"(type({var}) is dict and all(type({key}) is str and {inner} "
                f"for {key}, {item} in {var}.items()))"
            )
        raise TypeError(f"unsupported type on the wire: {tp!r}")

    def walk(self, tp: Any, value: Any, path: str, wire: str, errors: list[str]) -> None:
        """Append to ``errors`` every place where ``value`` does not fit ``tp``."""
        tp = strip(tp)
        if is_union(tp):
            self._walk_union(tp, value, path, wire, errors)
            return
        if not self._outer_fits(tp, value):
            # A literal's value is wrong, not its type: show which value it was.
            got = (
                shorten(repr(value))
                if is_literal(tp) and type(value) in _kinds(tp)
                else _got(value)
            )
            errors.append(f"{path}: expected {_describe(tp)}, got {got} @ {wire}")
            return
        if is_attrs(tp):
            for f in self.fields(tp):
                self.walk(
                    f.type, getattr(value, f.name), f"{path}.{f.name}", f"{wire}.{f.wire}", errors
                )
        elif is_sequence(tp):
            args = get_args(tp)
            fixed = get_origin(tp) is tuple and not (len(args) == 2 and args[1] is ...)
            for i, item in enumerate(value):
                self.walk(
                    args[i] if fixed else args[0], item, f"{path}[{i}]", f"{wire}[{i}]", errors
                )
        elif is_mapping(tp):
            _, value_type = get_args(tp)
            for key, item in value.items():
                shown = repr(shorten(key)) if isinstance(key, str) else None
                if shown is None:
                    errors.append(f"{path}: expected str keys, got {_got(key)} @ {wire}")
                    continue
                self.walk(value_type, item, f"{path}[{shown}]", f"{wire}[{shown}]", errors)

    def _outer_fits(self, tp: Any, value: Any) -> bool:
        """Whether ``value`` is of ``tp`` on the outside (its items are walked apart)."""
        if isinstance(value, bool) and tp in (int, float):
            return False  # True is an int to Python, not on the wire
        if is_literal(tp):
            return any(
                isinstance(value, type(v))
                and value == v
                and (type(v) is bool) == (value is True or value is False)
                for v in get_args(tp)
            )
        if is_sequence(tp):
            args = get_args(tp)
            if get_origin(tp) is tuple and not (len(args) == 2 and args[1] is ...):
                return isinstance(value, tuple) and len(value) == len(args)  # pyright: ignore[reportUnknownArgumentType]
        kind = _kind_of(tp)
        return kind is not None and isinstance(value, kind)

    def _walk_union(self, tp: Any, value: Any, path: str, wire: str, errors: list[str]) -> None:
        members = get_args(tp)
        if value is None and NoneType in members:
            return
        candidates = [m for m in members if self._outer_fits(strip(m), value) or is_union(strip(m))]
        for member in candidates:
            found: list[str] = []
            self.walk(member, value, path, wire, found)
            if not found:
                return
        if candidates:
            # Of the members it could be, report the first one's mismatches.
            self.walk(candidates[0], value, path, wire, errors)
        else:
            errors.append(f"{path}: expected {_describe(tp)}, got {_got(value)} @ {wire}")


def _unbuilt(_value: Any) -> bool:
    raise AssertionError("a check was called while being built")


def _describe(tp: Any) -> str:
    """``tp`` as "expected ..." names it."""
    tp = strip(tp)
    if tp is None or tp is NoneType:
        return "None"
    if is_literal(tp):
        return " or ".join(repr(v) for v in get_args(tp))
    if is_union(tp):
        return " or ".join(_describe(m) for m in get_args(tp))
    if is_sequence(tp):
        args = get_args(tp)
        origin = get_origin(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is ...):
            return f"a tuple of {len(args)}"
        return "list" if origin is list else "tuple" if origin is tuple else "list or tuple"
    if is_mapping(tp):
        return "dict"
    return type_name(tp)
