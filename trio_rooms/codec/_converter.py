"""``WireConverter``: the strict cattrs converter behind every codec.

Decoded wire values (dicts, lists, str, int, float, bool, None) become attrs
instances and back. The rules are the wire protocol's, stricter than cattrs'
defaults:

- no coercion: ``"1"``, ``1.9`` and ``True`` are not ints, ``"false"`` is not a bool;
  an int is accepted where a float is expected (`_scalars`);
- ``bytes`` are a msgpack bin or a strict base64 string in JSON, per format (`_bytes`);
- field names are renamed (lowerCamelCase by default) and extra keys are rejected
  (`_fields`, `_codegen`);
- a missing key for an ``X | None`` field decodes as ``None``, and a ``None`` value
  of such a field is omitted when encoding (`_codegen`);
- failures carry the wire path of every bad field (`_failures`).

cattrs dispatches and caches the hooks; this module registers the factories,
in priority order, and handles classes that refer to themselves.
"""

# Hooks take and return any wire value; none of it reaches a public signature.
# ruff: noqa: ANN401

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, get_args

import cattrs

from ._bytes import BytesAs, bytes_hooks
from ._codegen import generate_structure, generate_unstructure
from ._containers import (
    mapping_structure,
    mapping_unstructure,
    sequence_structure,
    sequence_unstructure,
)
from ._fields import WireField, wire_fields
from ._hooks import Hook, identity_factory
from ._inspect import (
    SCALARS,
    is_annotated,
    is_attrs,
    is_enum,
    is_literal,
    is_mapping,
    is_newtype,
    is_none,
    is_sequence,
    is_union,
    strip,
)
from ._scalars import (
    SCALAR_HOOKS,
    enum_structure,
    literal_structure,
    none_structure,
    unstructure_enum,
)
from ._unions import union_structure, union_unstructure

__all__ = ["WireConverter"]

T = TypeVar("T")

_Factory = Callable[[Any], Hook]


class WireConverter:
    """A ``cattrs.Converter`` with the wire protocol's strict rules.

    Args:
        camel_case: Rename fields to lowerCamelCase on the wire (``user_id`` ->
            ``userId``); otherwise keep the Python names.
        forbid_extra_keys: Reject objects with keys that name no field.
        bytes_as: How the format carries ``bytes``: ``"bin"`` (msgpack) or
            ``"base64"`` strings (JSON).

    Raises:
        TypeError: A class uses a type the wire cannot carry, two of its fields
            share a wire name, or a union's members cannot be told apart.
    """

    def __init__(self, *, camel_case: bool, forbid_extra_keys: bool, bytes_as: BytesAs) -> None:
        self.camel_case = camel_case
        self.forbid_extra_keys = forbid_extra_keys
        self.bytes_as: BytesAs = bytes_as
        # Classes reached again while their own hook is being built.
        self._recursive: set[Any] = set()
        self._building: set[tuple[str, Any]] = set()
        self._enums: set[Any] = set()
        conv = self._cattrs = cattrs.Converter()

        # Registered first so that it has the lowest priority: any type not
        # handled below is a construction error, not a runtime surprise.
        conv.register_structure_hook_factory(lambda _: True, self._unsupported)
        conv.register_unstructure_hook_factory(lambda _: True, self._unsupported)

        for tp, structure, unstructure in SCALAR_HOOKS:
            conv.register_structure_hook(tp, structure)
            conv.register_unstructure_hook(tp, unstructure)
        structure_bytes, unstructure_bytes = bytes_hooks(bytes_as)
        conv.register_structure_hook(bytes, structure_bytes)
        conv.register_unstructure_hook(bytes, unstructure_bytes)
        factories: list[tuple[Callable[[Any], bool], _Factory, _Factory]] = [
            (is_none, none_structure, identity_factory),
            (is_newtype, self._strip_structure, self._strip_unstructure),
            (is_annotated, self._strip_structure, self._strip_unstructure),
            (is_literal, literal_structure, identity_factory),
            (is_sequence, self._sequence_structure, self._sequence_unstructure),
            (is_mapping, self._mapping_structure, self._mapping_unstructure),
            (is_union, self._union_structure, self._union_unstructure),
            (is_attrs, self._attrs_structure, self._attrs_unstructure),
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
            tp = strip(tp)
            todo.extend(get_args(tp))
            if is_attrs(tp):
                todo.extend(f.type for f in self._fields(tp))
        return False

    # -- hook lookup ------------------------------------------------------

    def structure_hook(self, tp: Any) -> Hook:
        """The structure hook of ``tp``, built and cached on first use."""
        self._check_class(tp)
        self._register_enum(tp)
        key = ("s", tp)
        if key in self._building:
            self._recursive.add(tp)
            return self._trampoline(self._cattrs.get_structure_hook, tp)
        return self._cattrs.get_structure_hook(tp)

    def unstructure_hook(self, tp: Any) -> Hook:
        """The unstructure hook of ``tp``, built and cached on first use."""
        self._check_class(tp)
        self._register_enum(tp)
        key = ("u", tp)
        if key in self._building:
            return self._trampoline(self._cattrs.get_unstructure_hook, tp)
        return self._cattrs.get_unstructure_hook(tp)

    @staticmethod
    def _trampoline(get: Callable[[Any], Hook], tp: Any) -> Hook:
        # The hook for ``tp`` is still being built: look it up (cached by then)
        # on first use.
        hook: list[Hook] = []

        def call(value: Any, _type: Any = None) -> Any:
            if not hook:
                hook.append(get(tp))
            return hook[0](value)

        return call

    @staticmethod
    def _check_class(tp: Any) -> None:
        # cattrs dispatches some classes (bytearray, Path, subclasses of str, int
        # and float) before any factory, to hooks that coerce: refuse them here.
        if isinstance(tp, type) and not (
            tp in SCALARS or tp is bytes or is_enum(tp) or is_attrs(tp)
        ):
            raise TypeError(f"unsupported type on the wire: {tp!r}")

    def _register_enum(self, tp: Any) -> None:
        # cattrs dispatches int and str subclasses (IntEnum, StrEnum) to the int
        # and str hooks before any factory, so each enum gets its own hooks.
        if is_enum(tp) and tp not in self._enums:
            self._enums.add(tp)
            self._cattrs.register_structure_hook(tp, enum_structure(tp))
            self._cattrs.register_unstructure_hook(tp, unstructure_enum)

    @staticmethod
    def _unsupported(tp: Any) -> Hook:
        raise TypeError(f"unsupported type on the wire: {tp!r}")

    # -- hook factories ---------------------------------------------------
    # Each hands the factory of its kind of type this converter's hook lookup,
    # so nested types get the same rules, caching and recursion handling.

    def _strip_structure(self, tp: Any) -> Hook:
        return self.structure_hook(strip(tp))

    def _strip_unstructure(self, tp: Any) -> Hook:
        return self.unstructure_hook(strip(tp))

    def _sequence_structure(self, tp: Any) -> Hook:
        return sequence_structure(tp, self.structure_hook)

    def _sequence_unstructure(self, tp: Any) -> Hook:
        return sequence_unstructure(tp, self.unstructure_hook)

    def _mapping_structure(self, tp: Any) -> Hook:
        return mapping_structure(tp, self.structure_hook)

    def _mapping_unstructure(self, tp: Any) -> Hook:
        return mapping_unstructure(tp, self.unstructure_hook)

    def _union_structure(self, tp: Any) -> Hook:
        return union_structure(tp, self.structure_hook, self._fields)

    def _union_unstructure(self, tp: Any) -> Hook:
        return union_unstructure(tp, self.unstructure_hook)

    def _attrs_structure(self, cls: Any) -> Hook:
        return self._build_structure(cls, None)

    def _attrs_unstructure(self, cls: Any) -> Hook:
        return self._build_unstructure(cls, None)

    # -- per-class functions ----------------------------------------------

    def _fields(self, cls: Any) -> list[WireField]:
        return wire_fields(cls, camel_case=self.camel_case)

    def _tagged_fields(self, cls: Any, tag: str | None) -> list[WireField]:
        fields = self._fields(cls)
        if tag is not None:
            for f in fields:
                if f.wire == "type":
                    raise TypeError(
                        f"{cls.__qualname__}: field {f.name!r} is named 'type' on the wire, "
                        "which clashes with the tag"
                    )
        return fields

    def _build_structure(self, cls: Any, tag: str | None) -> Any:
        key = ("s", cls)
        self._building.add(key)
        try:
            fields = self._tagged_fields(cls, tag)
            return generate_structure(
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
            fields = self._tagged_fields(cls, tag)
            return generate_unstructure(
                cls, fields, [self.unstructure_hook(f.value_type) for f in fields], tag
            )
        finally:
            self._building.discard(key)
