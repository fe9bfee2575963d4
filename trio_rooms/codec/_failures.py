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

import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from ._inspect import type_name

__all__ = [
    "REQUIRED",
    "Invalid",
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
    return f"invalid value ({shorten(f'{type(exc).__name__}: {exc}')})"


def describe_error(exc: BaseException) -> str:
    """One bounded line describing a structuring failure, with wire paths."""
    messages = cattrs.transform_error(exc, "$", _format)
    text = "; ".join(messages[:_MAX_ERRORS])
    if len(messages) > _MAX_ERRORS:
        text += f"; and {len(messages) - _MAX_ERRORS} more"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
