"""The strict cattrs converter behind every codec, and its error messages.

Decoded wire values (dicts, lists, str, int, float, bool, None) become attrs
instances and back. The rules are the wire protocol's, stricter than cattrs'
defaults:

- no coercion: ``"1"``, ``1.9`` and ``True`` are not ints, ``"false"`` is not a bool;
  an int is accepted where a float is expected;
- field names are renamed (lowerCamelCase by default) and extra keys are rejected;
- a missing key for an ``X | None`` field decodes as ``None``, and a ``None`` value
  of such a field is omitted when encoding;
- failures carry the wire path of every bad field, rendered by
  ``cattrs.transform_error`` (``expected int @ $.items[1].id``).

cattrs dispatches and caches the hooks; the per-class functions are generated
here, once per codec, because ``cattrs.gen`` has no way to express the last two
rules or to report wire names in paths. This is the only module that handles
cattrs' ``Any``.
"""

# This module is where cattrs' ``Any`` lives (hooks take and return any wire
# value); none of it reaches a public signature.
# ruff: noqa: ANN401

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from .._message import camel_case as _camel_case

__all__ = ["MAX_RECURSIVE_DEPTH", "WireConverter", "describe_error"]

T = TypeVar("T")

# Structuring a recursive type costs about three Python frames per level, so a
# recursive message is limited well below the parsers' own limits (about 1024
# levels) to stay far from the interpreter's recursion limit.
MAX_RECURSIVE_DEPTH = 100

# Error messages echo parts of the input (keys, tags), so each part is cut
# short and the whole message is capped: a client cannot make us send back
# (or log) an arbitrarily long string.
_MAX_SHOWN = 40
_MAX_ERRORS = 3
_MAX_MESSAGE = 1000

_Hook = Callable[..., Any]
_Factory = Callable[[Any], _Hook]
_NoneType = type(None)
_MISSING: Any = object()


class _Invalid(ValueError):
    """A value that does not fit its type; ``str()`` is the whole description."""


def _identity(value: Any, _type: Any = None) -> Any:
    return value


def shorten(text: str) -> str:
    """``text``, cut to a length that is safe to echo in an error message."""
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _show(value: object) -> str:
    return shorten(value) if isinstance(value, str) else shorten(repr(value))


def _one_of(values: Sequence[object]) -> str:
    shown = ", ".join(repr(v) for v in values)
    return f"expected {shown}" if len(values) == 1 else f"expected one of {shown}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


# --- leaf hooks ------------------------------------------------------------
# Exact type checks: the parsers only ever produce exact ``dict``, ``list``,
# ``str``, ``int``, ``float``, ``bool`` and ``None``, and ``bool`` is a
# subclass of ``int`` that must not pass for one.


def _structure_int(value: Any, _type: Any = None) -> int:
    if type(value) is int:
        return value
    # orjson turns integer literals beyond 64 bits into floats instead of failing.
    if type(value) is float and value.is_integer() and not -(2**63) < value < 2**64:
        raise _Invalid("integer out of 64-bit range")
    raise _Invalid("expected int")


def _structure_float(value: Any, _type: Any = None) -> float:
    if type(value) is float:
        # JSON cannot carry NaN or infinities; msgpack can, but a message must
        # mean the same thing in both formats.
        if math.isfinite(value):
            return value
        raise _Invalid("expected a finite float")
    if type(value) is int:
        return float(value)
    raise _Invalid("expected float")


def _structure_str(value: Any, _type: Any = None) -> str:
    if type(value) is str:
        return value
    raise _Invalid("expected str")


def _structure_bool(value: Any, _type: Any = None) -> bool:
    if type(value) is bool:
        return value
    raise _Invalid("expected bool")


def _structure_none(value: Any, _type: Any = None) -> None:
    if value is not None:
        raise _Invalid("expected null")


def _is_none(tp: Any) -> bool:
    return tp is None


def _none_structure(_tp: Any) -> _Hook:
    return _structure_none


def _identity_factory(_tp: Any) -> _Hook:
    return _identity


def _unstructure_float(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"cannot encode {value!r}: only finite floats go on the wire")
    return value


# --- type classification -------------------------------------------------

_SCALARS: tuple[Any, ...] = (int, float, str, bool, _NoneType)
_SEQUENCES: dict[Any, type] = {list: list, tuple: tuple, Sequence: tuple}
_MAPPINGS: tuple[Any, ...] = (dict, Mapping)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _is_attrs(tp: Any) -> bool:
    return isinstance(tp, type) and attrs.has(tp)


def _is_newtype(tp: Any) -> bool:
    return isinstance(tp, typing.NewType)


def _is_annotated(tp: Any) -> bool:
    return get_origin(tp) is typing.Annotated


def _is_sequence(tp: Any) -> bool:
    return get_origin(tp) in _SEQUENCES


def _is_mapping(tp: Any) -> bool:
    return get_origin(tp) in _MAPPINGS


def _is_literal(tp: Any) -> bool:
    return get_origin(tp) is Literal


def _strip(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and ``NewType`` wrappers."""
    while True:
        if _is_annotated(tp):
            tp = get_args(tp)[0]
        elif _is_newtype(tp):
            tp = tp.__supertype__
        else:
            return tp


def _wire_kinds(tp: Any) -> set[type]:
    """The Python types of decoded wire values that ``tp`` may be built from."""
    tp = _strip(tp)
    if tp is float:
        return {float, int}
    if tp in (int, str, bool, _NoneType, None):
        return {_NoneType if tp is None else tp}
    if _is_literal(tp):
        return {type(v) for v in get_args(tp)}
    if _is_enum(tp):
        return {type(m.value) for m in tp}
    if _is_sequence(tp):
        return {list}
    if _is_mapping(tp) or _is_attrs(tp):
        return {dict}
    raise TypeError(f"unsupported type in a union: {tp!r}")


def _optional_arg(tp: Any) -> Any:
    """``X`` if ``tp`` is ``X | None`` (with ``X`` not ``None``), else ``_MISSING``."""
    if _is_union(tp):
        args = [a for a in get_args(tp) if a is not _NoneType]
        if len(args) < len(get_args(tp)):
            return Union[tuple(args)] if len(args) > 1 else args[0]  # noqa: UP007
    return _MISSING


# --- the converter -------------------------------------------------------


@attrs.frozen
class _Field:
    """One attrs field as it appears on the wire."""

    name: str
    alias: str
    wire: str
    type: Any
    optional: bool  # ``X | None``: missing decodes as None, None is omitted
    default: Any  # attrs.NOTHING, a value or an attrs.Factory
    kw_only: bool

    @property
    def value_type(self) -> Any:
        """The type of a present, non-None value."""
        return _optional_arg(self.type) if self.optional else self.type


class WireConverter:
    """A ``cattrs.Converter`` with the wire protocol's strict rules.

    Args:
        camel_case: Rename fields to lowerCamelCase on the wire (``user_id`` ->
            ``userId``); otherwise keep the Python names.
        forbid_extra_keys: Reject objects with keys that name no field.

    Raises:
        TypeError: A class uses a type the wire cannot carry, two of its fields
            share a wire name, or a union's members cannot be told apart.
    """

    def __init__(self, *, camel_case: bool, forbid_extra_keys: bool) -> None:
        self.camel_case = camel_case
        self.forbid_extra_keys = forbid_extra_keys
        # Classes reached again while their own hook is being built.
        self._recursive: set[Any] = set()
        self._building: set[tuple[str, Any]] = set()
        self._enums: set[Any] = set()
        conv = self._cattrs = cattrs.Converter()

        # Registered first so that it has the lowest priority: any type not
        # handled below is a construction error, not a runtime surprise.
        conv.register_structure_hook_factory(lambda _: True, self._unsupported)
        conv.register_unstructure_hook_factory(lambda _: True, self._unsupported)

        for tp, structure, unstructure in (
            (int, _structure_int, _identity),
            (float, _structure_float, _unstructure_float),
            (str, _structure_str, _identity),
            (bool, _structure_bool, _identity),
            (_NoneType, _structure_none, _identity),
        ):
            conv.register_structure_hook(tp, structure)
            conv.register_unstructure_hook(tp, unstructure)
        factories: list[tuple[Callable[[Any], bool], _Factory, _Factory]] = [
            (_is_none, _none_structure, _identity_factory),
            (_is_newtype, self._strip_structure, self._strip_unstructure),
            (_is_annotated, self._strip_structure, self._strip_unstructure),
            (_is_literal, _literal_structure, _identity_factory),
            (_is_sequence, self._sequence_structure, self._sequence_unstructure),
            (_is_mapping, self._mapping_structure, self._mapping_unstructure),
            (_is_union, self._union_structure, self._union_unstructure),
            (_is_attrs, self._attrs_structure, self._attrs_unstructure),
        ]
        for predicate, structure, unstructure in factories:
            conv.register_structure_hook_factory(predicate, structure)
            conv.register_unstructure_hook_factory(predicate, unstructure)

    # -- entry points -----------------------------------------------------

    def structure_fn(self, cls: type[T], *, tag: str) -> Callable[[dict[str, object]], T]:
        """A function building ``cls`` from a decoded top-level object.

        The object's ``"type"`` key (already checked against ``tag``) is allowed
        beside the fields.
        """
        # Build the nested variant first, so that every hook a recursive class
        # refers to is cached before the first decode.
        self.structure_hook(cls)
        return self._build_structure(cls, tag)

    def unstructure_fn(self, cls: type[T], *, tag: str) -> Callable[[T], dict[str, object]]:
        """A function turning a ``cls`` instance into a wire object tagged ``tag``."""
        self.unstructure_hook(cls)
        return self._build_unstructure(cls, tag)

    def is_recursive(self, cls: type) -> bool:
        """Whether values of ``cls`` can nest without bound (after ``structure_fn``)."""
        seen: set[Any] = set()
        todo: list[Any] = [cls]
        while todo:
            tp = todo.pop()
            if tp in self._recursive:
                return True
            if tp in seen:
                continue
            seen.add(tp)
            tp = _strip(tp)
            todo.extend(get_args(tp))
            if _is_attrs(tp):
                todo.extend(f.type for f in self._fields(tp))
        return False

    # -- hook lookup ------------------------------------------------------

    def structure_hook(self, tp: Any) -> _Hook:
        self._check_class(tp)
        self._register_enum(tp)
        key = ("s", tp)
        if key in self._building:
            self._recursive.add(tp)
            return self._trampoline(self._cattrs.get_structure_hook, tp)
        return self._cattrs.get_structure_hook(tp)

    def unstructure_hook(self, tp: Any) -> _Hook:
        self._check_class(tp)
        self._register_enum(tp)
        key = ("u", tp)
        if key in self._building:
            return self._trampoline(self._cattrs.get_unstructure_hook, tp)
        return self._cattrs.get_unstructure_hook(tp)

    @staticmethod
    def _trampoline(get: Callable[[Any], _Hook], tp: Any) -> _Hook:
        # The hook for ``tp`` is still being built: look it up (cached by then)
        # on first use.
        hook: list[_Hook] = []

        def call(value: Any, _type: Any = None) -> Any:
            if not hook:
                hook.append(get(tp))
            return hook[0](value)

        return call

    @staticmethod
    def _check_class(tp: Any) -> None:
        # cattrs dispatches some classes (bytes, Path, subclasses of str, int
        # and float) before any factory, to hooks that coerce: refuse them here.
        if isinstance(tp, type) and not (tp in _SCALARS or _is_enum(tp) or _is_attrs(tp)):
            raise TypeError(f"unsupported type on the wire: {tp!r}")

    def _register_enum(self, tp: Any) -> None:
        # cattrs dispatches int and str subclasses (IntEnum, StrEnum) to the int
        # and str hooks before any factory, so each enum gets its own hooks.
        if _is_enum(tp) and tp not in self._enums:
            self._enums.add(tp)
            self._cattrs.register_structure_hook(tp, _enum_structure(tp))
            self._cattrs.register_unstructure_hook(tp, _unstructure_enum)

    @staticmethod
    def _unsupported(tp: Any) -> _Hook:
        raise TypeError(f"unsupported type on the wire: {tp!r}")

    # -- hook factories ---------------------------------------------------

    def _strip_structure(self, tp: Any) -> _Hook:
        return self.structure_hook(_strip(tp))

    def _strip_unstructure(self, tp: Any) -> _Hook:
        return self.unstructure_hook(_strip(tp))

    def _sequence_structure(self, tp: Any) -> _Hook:
        make = _SEQUENCES[get_origin(tp)]
        args = get_args(tp)
        if make is tuple and not (len(args) == 2 and args[1] is ...):
            return _fixed_tuple_structure(tp, [self.structure_hook(a) for a in args])
        item_type = args[0] if args else Any
        return _sequence_structure(tp, make, self.structure_hook(item_type), item_type)

    def _sequence_unstructure(self, tp: Any) -> _Hook:
        args = get_args(tp)
        if get_origin(tp) is tuple and not (len(args) == 2 and args[1] is ...):
            hooks = [self.unstructure_hook(a) for a in args]
            if all(h is _identity for h in hooks):
                return _identity

            def unstructure_tuple(value: Sequence[Any]) -> list[Any]:
                return [h(v) for h, v in zip(hooks, value, strict=True)]

            return unstructure_tuple
        item = self.unstructure_hook(args[0] if args else Any)
        if item is _identity:
            # orjson and msgpack both write lists and tuples of plain values as arrays.
            return _identity

        def unstructure_sequence(value: Sequence[Any]) -> list[Any]:
            return [item(v) for v in value]

        return unstructure_sequence

    def _mapping_structure(self, tp: Any) -> _Hook:
        key_type, value_type = get_args(tp) or (Any, Any)
        if _strip(key_type) is not str:
            raise TypeError(f"unsupported mapping {tp!r}: keys must be str on the wire")
        return _mapping_structure(tp, self.structure_hook(value_type), value_type)

    def _mapping_unstructure(self, tp: Any) -> _Hook:
        _key_type, value_type = get_args(tp) or (Any, Any)
        item = self.unstructure_hook(value_type)
        if item is _identity:
            return _identity

        def unstructure_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
            return {k: item(v) for k, v in value.items()}

        return unstructure_mapping

    def _union_structure(self, tp: Any) -> _Hook:
        inner = _optional_arg(tp)
        if inner is not _MISSING and not _is_union(inner):
            hook = self.structure_hook(inner)

            def structure_optional(value: Any, _type: Any = None) -> Any:
                return None if value is None else hook(value)

            return structure_optional
        return self._any_union_structure(tp)

    def _any_union_structure(self, tp: Any) -> _Hook:
        by_kind: dict[type, list[Any]] = {}
        for member in get_args(tp):
            for kind in _wire_kinds(member):
                by_kind.setdefault(kind, []).append(member)
        # A member that takes ints as they are wins over float, which would convert.
        if len(by_kind.get(int, ())) > 1:
            by_kind[int] = [m for m in by_kind[int] if _strip(m) is not float]
        table: dict[type, _Hook] = {}
        for kind, members in by_kind.items():
            if len(members) == 1:
                table[kind] = self.structure_hook(members[0])
            elif kind is dict and all(_is_attrs(_strip(m)) for m in members):
                table[kind] = self._attrs_union_structure([_strip(m) for m in members])
            else:
                shown = " | ".join(_type_name(m) for m in members)
                raise TypeError(f"cannot tell apart {shown} on the wire (in {tp!r})")
        names = {
            dict: "object",
            list: "list",
            str: "str",
            int: "int",
            float: "float",
            bool: "bool",
            _NoneType: "null",
        }
        expected = "expected " + " or ".join(names[k] for k in table)

        def structure_union(value: Any, _type: Any = None) -> Any:
            hook = table.get(value.__class__)
            if hook is None:
                raise _Invalid(expected)
            return hook(value)

        return structure_union

    def _union_unstructure(self, tp: Any) -> _Hook:
        members = [m for m in get_args(tp) if m is not _NoneType]
        hooks = [self.unstructure_hook(m) for m in members]
        if all(h is _identity for h in hooks):
            return _identity
        table: dict[type, _Hook] = {}
        for member, hook in zip(members, hooks, strict=True):
            stripped = _strip(member)
            origin = get_origin(stripped) or stripped
            kinds = (
                [list, tuple]
                if origin in _SEQUENCES
                else [dict]
                if origin in _MAPPINGS
                else [origin]
            )
            for kind in kinds:
                table[kind] = hook

        def unstructure_union(value: Any) -> Any:
            hook = table.get(value.__class__)
            return value if hook is None else hook(value)

        return unstructure_union

    def _attrs_union_structure(self, classes: list[type]) -> _Hook:
        """Tell attrs classes apart by a literal field, else by a unique required key."""
        fields = [{f.wire: f for f in self._fields(cls)} for cls in classes]
        hooks = [self.structure_hook(cls) for cls in classes]
        common = set(fields[0]).intersection(*fields[1:])
        for wire in sorted(common):
            types_ = [_strip(fs[wire].type) for fs in fields]
            if not all(_is_literal(t) for t in types_):
                continue
            table: dict[tuple[type, object], _Hook] = {}
            for t, hook in zip(types_, hooks, strict=True):
                for value in get_args(t):
                    table.setdefault((value.__class__, value), hook)
            if len(table) == sum(len(get_args(t)) for t in types_):
                return _discriminated_structure(classes, wire, table)
        return _unique_key_structure(classes, fields, hooks)

    def _attrs_structure(self, cls: Any) -> _Hook:
        return self._build_structure(cls, None)

    def _attrs_unstructure(self, cls: Any) -> _Hook:
        return self._build_unstructure(cls, None)

    # -- per-class code generation ----------------------------------------

    def _fields(self, cls: Any) -> list[_Field]:
        try:
            attrs.resolve_types(cls)
        except NameError as exc:
            raise TypeError(f"cannot resolve the annotations of {cls.__qualname__}: {exc}") from exc
        result: list[_Field] = []
        seen: dict[str, str] = {}
        for a in attrs.fields(cls):
            if not a.init:
                continue  # computed by the class itself; never on the wire
            wire = _camel_case(a.name) if self.camel_case else a.name
            if wire in seen:
                raise TypeError(
                    f"{cls.__qualname__}: fields {seen[wire]!r} and {a.name!r} "
                    f"are both named {wire!r} on the wire"
                )
            seen[wire] = a.name
            optional = _optional_arg(a.type) is not _MISSING
            result.append(_Field(a.name, a.alias, wire, a.type, optional, a.default, a.kw_only))
        return result

    def _build_structure(self, cls: Any, tag: str | None) -> Any:
        key = ("s", cls)
        self._building.add(key)
        try:
            fields = self._fields(cls)
            if tag is not None and "type" in {f.wire for f in fields}:
                raise TypeError(f"{cls.__qualname__}: a field named 'type' clashes with the tag")
            return _generate_structure(
                cls,
                fields,
                [self.structure_hook(f.value_type) for f in fields],
                self.forbid_extra_keys,
                tag,
            )
        finally:
            self._building.discard(key)

    def _build_unstructure(self, cls: Any, tag: str | None) -> Any:
        key = ("u", cls)
        self._building.add(key)
        try:
            fields = self._fields(cls)
            return _generate_unstructure(
                cls, fields, [self.unstructure_hook(f.value_type) for f in fields], tag
            )
        finally:
            self._building.discard(key)


def _note(exc: Exception, name: str, tp: Any) -> Exception:
    exc.__notes__ = [*getattr(exc, "__notes__", ()), AttributeValidationNote(name, name, tp)]
    return exc


def _index_note(exc: Exception, index: int | str, tp: Any) -> Exception:
    exc.__notes__ = [*getattr(exc, "__notes__", ()), IterableValidationNote(str(index), index, tp)]
    return exc


def _compile(lines: list[str], globs: dict[str, Any], filename: str) -> _Hook:
    # The helpers become keyword defaults: locals are faster to load than globals.
    bound = ", ".join(f"{k}={k}" for k in globs)
    lines = [lines[0].replace("):", f", *, {bound}):" if bound else "):"), *lines[1:]]
    namespace = dict(globs)
    exec(compile("\n".join(lines), filename, "exec"), namespace)
    return namespace[lines[0][4 : lines[0].index("(")]]


_REQUIRED = "required field missing"


def _generate_structure(
    cls: Any, fields: list[_Field], hooks: list[_Hook], forbid_extra_keys: bool, tag: str | None
) -> _Hook:
    allowed = frozenset({f.wire for f in fields} | ({"type"} if tag is not None else set()))
    globs: dict[str, Any] = {
        "__cls": cls,
        "__MISSING": _MISSING,
        "__Invalid": _Invalid,
        "__note": _note,
        "__cve": ClassValidationError,
        "__feke": ForbiddenExtraKeysError,
        "__allowed": allowed,
    }
    lines = [
        "def structure(o, _type=None):",
        "  if type(o) is not dict:",
        "    raise __Invalid('expected an object')",
        "  errors = []",
    ]
    call_args: list[str] = []
    positional = True
    for i, (f, hook) in enumerate(zip(fields, hooks, strict=True)):
        globs[f"__h{i}"] = hook
        globs[f"__t{i}"] = f.type
        v = f"v{i}"
        call = f"{v} = __h{i}({v})"
        catch = f"except Exception as e: errors.append(__note(e, {f.wire!r}, __t{i}))"
        if f.default is attrs.NOTHING and not f.optional:
            lines += [
                f"  {v} = o.get({f.wire!r}, __MISSING)",
                f"  if {v} is __MISSING:",
                f"    errors.append(__note(__Invalid({_REQUIRED!r}), {f.wire!r}, __t{i}))",
                "  else:",
                f"    try: {call}",
                f"    {catch}",
            ]
        elif f.default is attrs.NOTHING:
            # An optional field without a default: a missing key means None.
            lines += [
                f"  {v} = o.get({f.wire!r})",
                f"  if {v} is not None:",
                f"    try: {call}",
                f"    {catch}",
            ]
        elif isinstance(f.default, attrs.Factory) and f.default.takes_self:  # type: ignore[arg-type]
            # Left out of the call when missing, so attrs runs the factory with self.
            lines += [
                f"  {v} = o.get({f.wire!r}, __MISSING)",
                f"  if {v} is not __MISSING:",
                f"    if {v} is not None:" if f.optional else "    if True:",
                f"      try: {call}",
                f"      {catch}",
                f"    kw[{f.alias!r}] = {v}",
            ]
            continue
        elif isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            globs[f"__d{i}"] = f.default.factory
            lines += [
                f"  {v} = o.get({f.wire!r}, __MISSING)",
                f"  if {v} is __MISSING: {v} = __d{i}()",
                f"  elif {v} is not None:" if f.optional else "  else:",
                f"    try: {call}",
                f"    {catch}",
            ]
        else:
            globs[f"__d{i}"] = f.default
            lines += [
                f"  {v} = o.get({f.wire!r}, __MISSING)",
                f"  if {v} is __MISSING: {v} = __d{i}",
                f"  elif {v} is not None:" if f.optional else "  else:",
                f"    try: {call}",
                f"    {catch}",
            ]
        # Positional while possible: attrs orders init arguments as the fields.
        positional = positional and not f.kw_only and len(call_args) == i
        call_args.append(v if positional else f"{f.alias}={v}")
    if len(call_args) < len(fields):
        lines.insert(4, "  kw = {}")
        call_args.append("**kw")
    if forbid_extra_keys:
        lines += [
            "  if not o.keys() <= __allowed:",
            "    errors.append(__feke('', __cls, set(o.keys()) - __allowed))",
        ]
    name = cls.__qualname__
    lines += [
        f"  if errors: raise __cve({'While structuring ' + name!r}, errors, __cls)",
        "  try:",
        f"    return __cls({', '.join(call_args)})",
        "  except Exception as e:",
        f"    raise __cve({'While structuring ' + name!r}, [e], __cls) from None",
    ]
    return _compile(lines, globs, f"<structure {name}>")


def _generate_unstructure(
    cls: Any, fields: list[_Field], hooks: list[_Hook], tag: str | None
) -> _Hook:
    globs: dict[str, Any] = {}
    items = [f"'type': {tag!r}"] if tag is not None else []
    optional_lines: list[str] = []
    for i, (f, hook) in enumerate(zip(fields, hooks, strict=True)):
        globs[f"__h{i}"] = hook
        value = f"v.{f.name}"
        if f.optional:
            # Omitted, not null: JS validators (zod's .optional()) reject null.
            call = "x" if hook is _identity else f"__h{i}(x)"
            optional_lines += [f"  x = {value}", f"  if x is not None: d[{f.wire!r}] = {call}"]
        else:
            items.append(f"{f.wire!r}: " + (value if hook is _identity else f"__h{i}({value})"))
    lines = [
        "def unstructure(v):",
        f"  d = {{{', '.join(items)}}}",
        *optional_lines,
        "  return d",
    ]
    return _compile(lines, globs, f"<unstructure {cls.__qualname__}>")


# --- container, literal, enum and union hooks ------------------------------


def _validation_error(
    kind: type[ClassValidationError | IterableValidationError],
    errors: list[Exception],
    tp: Any,
) -> Exception:
    # cattrs declares these exception groups with ``__new__(message, excs, cl)``,
    # which pyright checks against ExceptionGroup's two-argument ``__init__``.
    return kind("While structuring " + _type_name(tp), errors, tp)  # pyright: ignore[reportCallIssue]


def _sequence_structure(tp: Any, make: type, hook: _Hook, item_type: Any) -> _Hook:
    def structure_sequence(value: Any, _type: Any = None) -> Any:
        if type(value) is not list:
            raise _Invalid("expected a list")
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
                errors.append(_index_note(exc, i, item_type))
        raise _validation_error(IterableValidationError, errors, tp)

    return structure_sequence


def _fixed_tuple_structure(tp: Any, hooks: list[_Hook]) -> _Hook:
    args = get_args(tp)
    size = len(hooks)

    def structure_tuple(value: Any, _type: Any = None) -> Any:
        items = cast("list[Any]", value)
        if type(value) is not list or len(items) != size:
            raise _Invalid(f"expected a list of {size} items")
        result: list[Any] = []
        errors: list[Exception] = []
        for i, (hook, v) in enumerate(zip(hooks, items, strict=True)):
            try:
                result.append(hook(v))
            except Exception as exc:
                errors.append(_index_note(exc, i, args[i]))
        if errors:
            raise _validation_error(IterableValidationError, errors, tp)
        return tuple(result)

    return structure_tuple


def _mapping_structure(tp: Any, hook: _Hook, value_type: Any) -> _Hook:
    def structure_mapping(value: Any, _type: Any = None) -> Any:
        if type(value) is not dict:
            raise _Invalid("expected an object")
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
                errors.append(_Invalid(f"expected str keys, got {_show(k)}"))
                continue
            try:
                hook(v)
            except Exception as exc:
                errors.append(_index_note(exc, shorten(k), value_type))
        raise _validation_error(IterableValidationError, errors, tp)

    return structure_mapping


_LITERAL_KINDS: tuple[type, ...] = (str, int, bool, _NoneType)


def _literal_structure(tp: Any) -> _Hook:
    values: tuple[object, ...] = get_args(tp)
    for v in values:
        if type(v) not in _LITERAL_KINDS:
            raise TypeError(f"unsupported literal {tp!r}: only str, int, bool and None values")
    # Keyed by type too: True == 1, but a bool is not an int on the wire.
    allowed: set[tuple[type, object]] = {(type(v), v) for v in values}
    message = _one_of(values)

    def structure_literal(value: Any, _type: Any = None) -> Any:
        kind: type[object] = value.__class__
        if kind in _LITERAL_KINDS and (kind, value) in allowed:
            return value
        raise _Invalid(message)

    return structure_literal


def _enum_structure(tp: type[enum.Enum]) -> _Hook:
    members = list(tp)
    for m in members:
        if type(m.value) not in (str, int):
            raise TypeError(f"unsupported enum {tp.__qualname__}: only str and int values")
    table: dict[tuple[type, object], enum.Enum] = {(type(m.value), m.value): m for m in members}
    message = _one_of([m.value for m in members])

    def structure_enum(value: Any, _type: Any = None) -> Any:
        kind: type[object] = value.__class__
        if kind is str or kind is int:
            member = table.get((kind, value))
            if member is not None:
                return member
        raise _Invalid(message)

    return structure_enum


def _unstructure_enum(member: enum.Enum) -> object:
    return member.value


def _discriminated_structure(
    classes: list[type], wire: str, table: dict[tuple[type, object], _Hook]
) -> _Hook:
    values = [v for _, v in table]
    message = _one_of(values)

    def structure_discriminated(value: Any, _type: Any = None) -> Any:
        if type(value) is not dict:
            raise _Invalid("expected an object")
        obj = cast("dict[Any, Any]", value)
        key: object = obj.get(wire, _MISSING)
        if key is _MISSING:
            error = _Invalid("required field missing")
        else:
            kind: type[object] = key.__class__
            hook = table.get((kind, key)) if kind in _LITERAL_KINDS else None
            if hook is not None:
                return hook(value)
            error = _Invalid(message)
        _note(error, wire, None)
        raise _validation_error(ClassValidationError, [error], classes[0])

    return structure_discriminated


def _unique_key_structure(
    classes: list[type], fields: list[dict[str, _Field]], hooks: list[_Hook]
) -> _Hook:
    """cattrs' unique-key disambiguation, on wire names."""
    required = [
        {w for w, f in fs.items() if f.default is attrs.NOTHING and not f.optional} for fs in fields
    ]
    pinned: dict[str, _Hook] = {}
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
            raise _Invalid("expected an object")
        for key, hook in pinned.items():
            if key in value:
                return hook(value)
        if fallback is None:
            raise _Invalid(f"expected one of {names}: none of the keys {keys} found")
        return fallback(value)

    return structure_by_key


# --- errors and depth ------------------------------------------------------


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, _Invalid):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(_show(k) for k in exc.extra_fields)
        shown = ", ".join(extra[:5]) + (f", ... ({len(extra) - 5} more)" if len(extra) > 5 else "")
        return f"extra fields found ({shown})"
    return f"invalid value ({shorten(f'{type(exc).__name__}: {exc}')})"


def describe_error(exc: BaseException) -> str:
    """One bounded line describing a structuring failure, with wire paths."""
    messages = cattrs.transform_error(exc, "$", _format)
    text = "; ".join(messages[:_MAX_ERRORS])
    if len(messages) > _MAX_ERRORS:
        text += f"; and {len(messages) - _MAX_ERRORS} more"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def too_deep(obj: object, limit: int) -> bool:
    """Whether ``obj`` nests lists and dicts more than ``limit`` levels deep."""
    # Iterative on purpose: this guards the recursive code from deep input.
    level: list[object] = [obj]
    for _ in range(limit):
        nested: list[object] = []
        for value in level:
            items = value.values() if type(value) is dict else value  # type: ignore[union-attr]
            nested.extend(v for v in items if type(v) is dict or type(v) is list)  # type: ignore[union-attr]
        if not nested:
            return False
        level = nested
    return True
