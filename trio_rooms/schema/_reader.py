"""Annotations to the wire model, by the codec's rules.

The dispatch follows ``codec._converter.WireConverter`` type by type; unions are
split with the codec's own `members_by_kind` and `discriminator`, and wire names
come from `wire_fields` only. A type the codec takes but a JSON Schema or zod
schema cannot describe exactly is a ``TypeError`` naming the field, never a
looser schema.
"""

# Annotations and defaults are arbitrary objects.
# ruff: noqa: ANN401

from __future__ import annotations

import enum
from typing import Any, cast, final, get_args, get_origin

import attrs
import orjson

from ..codec._converter import WireConverter
from ..codec._fields import WireField, wire_fields
from ..codec._inspect import (
    MISSING,
    SEQUENCES,
    NoneType,
    is_attrs,
    is_enum,
    is_literal,
    is_mapping,
    is_sequence,
    is_union,
    optional_arg,
    strip,
    type_name,
)
from ..codec._unions import discriminator, members_by_kind
from ._model import (
    AnyOf,
    ArrayOf,
    Const,
    DefKey,
    EnumDef,
    FieldDef,
    JsonValue,
    Nullable,
    ObjectDef,
    RecordOf,
    Ref,
    Scalar,
    TupleOf,
    WireType,
)

__all__ = ["Reader"]

_SCALARS: dict[Any, Scalar] = {
    int: Scalar("int"),
    float: Scalar("float"),
    str: Scalar("str"),
    bool: Scalar("bool"),
    bytes: Scalar("bytes"),
    NoneType: Scalar("null"),
}

# attrs' stubs declare ``Factory`` a function; at run time it is the class of
# ``attrs.field(factory=...)`` defaults.
_FACTORY: type = attrs.Factory  # pyright: ignore[reportAssignmentType]


@final
class Reader:
    """Collects the definitions that a room's types reach, for one codec setting.

    Args:
        camel_case: The codec's ``camel_case``: wire names in lowerCamelCase.
        forbid_extra_keys: The codec's ``forbid_extra_keys``: objects are strict.
    """

    def __init__(self, *, camel_case: bool, forbid_extra_keys: bool) -> None:
        self.camel_case = camel_case
        self.strict = forbid_extra_keys
        # Defaults are written as the JSON codec writes field values (bytes as base64).
        self._converter = WireConverter(
            camel_case=camel_case, forbid_extra_keys=forbid_extra_keys, bytes_as="base64"
        )
        self.defs: dict[DefKey, ObjectDef | EnumDef] = {}
        self._building: set[DefKey] = set()

    def message(self, cls: type, tag: str) -> Ref:
        """A message class at the top of a frame: its fields and ``"type": tag``."""
        return self._object(cls, tag)

    def nested(self, cls: type) -> Ref:
        """An attrs class inside a frame, without a tag (presence metadata)."""
        return self._object(cls, None)

    def type_of(self, tp: Any, where: str) -> WireType:
        """The wire model of the annotation ``tp`` (of the field ``where``).

        Raises:
            TypeError: The codec does not take ``tp``, or takes it in a way a
                schema cannot describe.
        """
        tp = strip(tp)
        if tp is None:
            return _SCALARS[NoneType]
        if isinstance(tp, type) and tp in _SCALARS:
            return _SCALARS[tp]
        if is_literal(tp):
            return _literal(tp, where)
        if is_enum(tp):
            return self._enum(cast("type[enum.Enum]", tp), where)
        if is_sequence(tp):
            return self._sequence(tp, where)
        if is_mapping(tp):
            key_type, value_type = get_args(tp) or (Any, Any)
            if strip(key_type) is not str:
                raise TypeError(f"{where}: {tp!r}: keys must be str on the wire")
            return RecordOf(self.type_of(value_type, where))
        if is_union(tp):
            return self._union(tp, where)
        if is_attrs(tp):
            return self._object(tp, None)
        raise TypeError(f"{where}: unsupported type on the wire: {tp!r}")

    # -- kinds of types ----------------------------------------------------

    def _sequence(self, tp: Any, where: str) -> WireType:
        args = get_args(tp)
        if get_origin(tp) is tuple and not (len(args) == 2 and args[1] is ...):
            return TupleOf(tuple(self.type_of(a, where) for a in args))
        if not args or get_origin(tp) not in SEQUENCES:
            raise TypeError(f"{where}: unsupported type on the wire: {tp!r}")
        return ArrayOf(self.type_of(args[0], where))

    def _union(self, tp: Any, where: str) -> WireType:
        inner = optional_arg(tp)
        if inner is not MISSING and not is_union(inner):
            return Nullable(self.type_of(inner, where))
        by_kind = members_by_kind(tp)
        self._check_numbers(tp, by_kind, where)
        classes = [strip(m) for m in by_kind.get(dict, ())]
        if len(classes) > 1 and all(is_attrs(c) for c in classes):
            self._check_classes(tp, classes, where)
        return AnyOf(tuple(self.type_of(member, where) for member in get_args(tp)))

    @staticmethod
    def _check_numbers(tp: Any, by_kind: dict[type, list[Any]], where: str) -> None:
        # With a float member, the codec reads a whole number as the int-kind member
        # and 2.0 as the float: JavaScript and JSON Schema see one number in both.
        if not any(strip(m) is float for m in get_args(tp)):
            return
        for member in by_kind.get(int, ()):
            if strip(member) is not int and strip(member) is not float:
                raise TypeError(
                    f"{where}: {tp!r} cannot be described: the codec reads a whole number "
                    f"as {type_name(member)} and 2.0 as the float, which JSON Schema and "
                    "JavaScript cannot tell apart"
                )

    def _check_classes(self, tp: Any, classes: list[type], where: str) -> None:
        fields = [{f.wire: f for f in self._fields(c)} for c in classes]
        wire = discriminator(fields)
        if wire is None:
            if not self.strict:
                # Told apart by the first unique key present: a non-strict object
                # of another member could also fit.
                names = " | ".join(c.__qualname__ for c in classes)
                raise TypeError(
                    f"{where}: {names} are told apart by their keys, which cannot be "
                    "described when extra keys are allowed (forbid_extra_keys=False)"
                )
            return
        for cls, fs in zip(classes, fields, strict=True):
            if fs[wire].default is not attrs.NOTHING:
                raise TypeError(
                    f"{where}: in {tp!r} the codec requires {wire!r}, but "
                    f"{cls.__qualname__}.{fs[wire].name} has a default; remove the default "
                    "to describe the union"
                )

    def _enum(self, cls: type[enum.Enum], where: str) -> WireType:
        key: DefKey = (cls, None)
        if key not in self.defs:
            values: list[str | int] = []
            for member in cls:
                value: object = member.value
                if type(value) is not str and type(value) is not int:
                    raise TypeError(f"{where}: {cls.__qualname__}: only str and int values")
                values.append(value)
            self.defs[key] = EnumDef(cls, tuple(values))
        return Ref(key)

    def _object(self, cls: type, tag: str | None) -> Ref:
        key: DefKey = (cls, tag)
        if key in self.defs or key in self._building:
            return Ref(key)  # known, or recursive: a reference is enough
        self._building.add(key)
        try:
            fields = tuple(self._field(cls, f) for f in self._fields(cls))
        finally:
            self._building.discard(key)
        self.defs[key] = ObjectDef(cls, tag, fields, self.strict)
        return Ref(key)

    def _fields(self, cls: type) -> list[WireField]:
        return wire_fields(cls, camel_case=self.camel_case)

    def _field(self, cls: type, f: WireField) -> FieldDef:
        where = f"{cls.__qualname__}.{f.name}"
        model = self.type_of(f.value_type, where)
        if f.default is attrs.NOTHING:
            return FieldDef(f.wire, model, f.optional, has_default=False)
        if isinstance(f.default, _FACTORY):
            if f.default.takes_self:
                # Computed from the other fields: may be missing, no fixed value.
                return FieldDef(f.wire, model, f.optional, has_default=not f.optional)
            value: object = f.default.factory()
        else:
            value = f.default
        if f.optional and value is None:
            return FieldDef(f.wire, model, optional=True, has_default=False)
        default = self._wire_value(f.value_type, value, where)
        return FieldDef(f.wire, model, f.optional, True, default, default_known=True)

    def _wire_value(self, tp: Any, value: object, where: str) -> JsonValue:
        try:
            wire: object = self._converter.unstructure_hook(tp)(value)
            # Tuples become lists, as in an encoded frame.
            return cast("JsonValue", orjson.loads(orjson.dumps(wire)))
        except (TypeError, ValueError, AttributeError, orjson.JSONEncodeError) as exc:
            raise TypeError(f"{where}: the default {value!r} cannot be encoded: {exc}") from exc


def _literal(tp: Any, where: str) -> Const:
    values: tuple[object, ...] = get_args(tp)
    for v in values:
        if type(v) not in (str, int, bool, NoneType):
            raise TypeError(f"{where}: unsupported literal {tp!r}: only str, int, bool and None")
    return Const(cast("tuple[str | int | bool | None, ...]", values))
