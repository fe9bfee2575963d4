"""How a structuring failure is told: ``Invalid``, wire-path notes and one bounded line.

Hooks raise :class:`Invalid` (its text is the whole description) and tag every
failure with the wire name or index where it happened, as cattrs' notes, so that
``cattrs.transform_error`` renders paths: ``expected int @ $.items[1].id``.
"""

# Hooks fail on any wire value, so the types they report are typed ``Any``.
# ruff: noqa: ANN401

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from ._inspect import MISSING, type_name

__all__ = [
    "REQUIRED",
    "Invalid",
    "construction_errors",
    "describe_error",
    "index_note",
    "note",
    "one_of",
    "shorten",
    "show",
    "validation_error",
]

# Error messages echo parts of the input (keys, tags), so each part is cut
# short and the whole message is capped: a client cannot make us send back
# (or log) an arbitrarily long string.
_MAX_SHOWN = 40
_MAX_ERRORS = 3
_MAX_MESSAGE = 1000

REQUIRED = "required field missing"


class Invalid(ValueError):
    """A value that does not fit its type; ``str()`` is the whole description."""


def shorten(text: str) -> str:
    """``text``, cut to a length that is safe to echo in an error message."""
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def show(value: object) -> str:
    """``value`` (a wire key or value) as an error message may echo it."""
    return shorten(value) if isinstance(value, str) else shorten(repr(value))


def one_of(values: Sequence[object]) -> str:
    """The description of a failure to be one of ``values``."""
    shown = ", ".join(repr(v) for v in values)
    return f"expected {shown}" if len(values) == 1 else f"expected one of {shown}"


def note(exc: Exception, name: str, tp: Any) -> Exception:
    """``exc``, marked as the failure of the field that has wire name ``name``."""
    exc.__notes__ = [*getattr(exc, "__notes__", ()), AttributeValidationNote(name, name, tp)]
    return exc


def index_note(exc: Exception, index: int | str, tp: Any) -> Exception:
    """``exc``, marked as the failure of item ``index`` of a list or object."""
    exc.__notes__ = [*getattr(exc, "__notes__", ()), IterableValidationNote(str(index), index, tp)]
    return exc


def construction_errors(
    cls: Any, exc: Exception, values: dict[str, Any], wires: dict[str, str]
) -> list[Exception]:
    """Why ``cls(**values)`` raised ``exc``: each failing field's error, noted with its wire name.

    The fields' converters and validators run again one by one, on an instance that
    has every value set but was never initialised, so that each failure is told at its
    field (``@ $.name``). If that does not find ``exc`` again (``__attrs_post_init__``
    raised, say), ``exc`` stands, at the object itself.
    """
    instance = object.__new__(cls)
    errors: list[Exception] = []
    checked: list[tuple[attrs.Attribute[Any], Any]] = []
    for a in attrs.fields(cls):
        value = values.get(a.name, MISSING)
        if value is MISSING:
            continue  # left to a default that takes self: not the wire's doing
        converter: Any = a.converter
        if converter is not None:
            try:
                # attrs sets a Converter's three-argument __call__ on the instance.
                call: Any = converter.__call__
                value = (
                    call(value, instance, a)
                    if isinstance(converter, attrs.Converter)
                    else call(value)
                )
            except Exception as e:
                errors.append(note(e, wires[a.name], a.type))
                continue
        object.__setattr__(instance, a.name, value)
        checked.append((a, value))
    for a, value in checked:
        if a.validator is not None:
            try:
                a.validator(instance, a, value)
            except Exception as e:
                errors.append(note(e, wires[a.name], a.type))
    # attrs converts, then validates, field by field, and stops at the first failure:
    # unless the first one found again is ``exc`` (a validator may need what only
    # ``__init__`` sets), the fields are not to blame.
    first = errors[0] if errors else None
    if first is None or type(first) is not type(exc) or first.args != exc.args:
        return [exc]
    return errors


def validation_error(
    kind: type[ClassValidationError | IterableValidationError],
    errors: list[Exception],
    tp: Any,
) -> Exception:
    """The exception group of the noted ``errors`` of a ``tp`` value."""
    # cattrs declares these exception groups with ``__new__(message, excs, cl)``,
    # which pyright checks against ExceptionGroup's two-argument ``__init__``.
    return kind("While structuring " + type_name(tp), errors, tp)  # pyright: ignore[reportCallIssue]


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, Invalid):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(show(k) for k in exc.extra_fields)
        shown = ", ".join(extra[:5]) + (f", ... ({len(extra) - 5} more)" if len(extra) > 5 else "")
        return f"extra fields found ({shown})"
    # A validator's own words, whole (the line as a whole is bounded): attrs' validators
    # raise ``TypeError(text, attribute, type, value)``, whose str() is a tuple.
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return f"invalid value ({type(exc).__name__}: {text})"


def describe_error(exc: BaseException) -> str:
    """One bounded line describing a structuring failure, with wire paths."""
    messages = cattrs.transform_error(exc, "$", _format)
    text = "; ".join(messages[:_MAX_ERRORS])
    if len(messages) > _MAX_ERRORS:
        text += f"; and {len(messages) - _MAX_ERRORS} more"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
