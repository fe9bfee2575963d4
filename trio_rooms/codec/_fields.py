"""An attrs class's fields as they appear on the wire: wire names, optionality, defaults."""

# Field types and defaults are arbitrary objects.
# ruff: noqa: ANN401

from __future__ import annotations

from typing import Any, final

import attrs

from .._message import WIRE_NAME
from .._message import camel_case as to_camel_case
from ._inspect import MISSING, optional_arg

__all__ = ["WireField", "wire_fields"]


@final
@attrs.frozen
class WireField:
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
        return optional_arg(self.type) if self.optional else self.type


def wire_fields(cls: Any, *, camel_case: bool) -> list[WireField]:
    """The fields of ``cls`` that go on the wire, in order.

    A field's wire name is the one its ``trio_rooms.wire(...)`` metadata gives, else
    its name (in lowerCamelCase with ``camel_case``).

    Raises:
        TypeError: An annotation of ``cls`` names an unknown type, two fields share a
            wire name, or a chosen wire name starts with ``$`` (library frames).
    """
    try:
        attrs.resolve_types(cls)
    except NameError as exc:
        raise TypeError(f"cannot resolve the annotations of {cls.__qualname__}: {exc}") from exc
    result: list[WireField] = []
    seen: dict[str, str] = {}
    for a in attrs.fields(cls):
        if not a.init:
            continue  # computed by the class itself; never on the wire
        chosen: object = a.metadata.get(WIRE_NAME)
        if chosen is None:
            wire = to_camel_case(a.name) if camel_case else a.name
        elif not isinstance(chosen, str) or not chosen:
            raise TypeError(f"{cls.__qualname__}.{a.name}: a wire name must be a non-empty str")
        elif chosen.startswith("$"):
            raise TypeError(
                f"{cls.__qualname__}.{a.name}: the wire name {chosen!r} starts with '$', "
                "which is kept for library frames"
            )
        else:
            wire = chosen
        if wire in seen:
            raise TypeError(
                f"{cls.__qualname__}: fields {seen[wire]!r} and {a.name!r} "
                f"are both named {wire!r} on the wire"
            )
        seen[wire] = a.name
        optional = optional_arg(a.type) is not MISSING
        result.append(WireField(a.name, a.alias, wire, a.type, optional, a.default, a.kw_only))
    return result
