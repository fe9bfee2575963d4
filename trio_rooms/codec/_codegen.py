"""Code generation: one structure and one unstructure function per attrs class.

``cattrs.gen`` cannot express the wire's rules (a missing ``X | None`` key is
``None``, a ``None`` value is left out) or report wire names in paths, so the
functions are generated here, once per codec. They check every field and
collect every failure before raising, and call the field hooks directly: the
hooks are bound as keyword defaults, and the identity hook is not called at all.
"""

# Classes, defaults and hooks are arbitrary objects.
# ruff: noqa: ANN401

from __future__ import annotations

import math
from typing import Any

import attrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from ._failures import REQUIRED, Invalid, construction_errors, note
from ._fields import WireField
from ._hooks import Hook, identity
from ._inspect import MISSING
from ._scalars import INLINE_GUARDS

__all__ = ["generate_structure", "generate_unstructure"]

# attrs' stubs declare ``Factory`` a function; at run time it is the class of
# ``attrs.field(factory=...)`` defaults.
_FACTORY: type = attrs.Factory  # pyright: ignore[reportAssignmentType]


def _compile(lines: list[str], globs: dict[str, Any], filename: str) -> Hook:
    # The helpers become keyword defaults: locals are faster to load than globals.
    globs = {**globs, "__isfinite": math.isfinite}
    bound = ", ".join(f"{k}={k}" for k in globs)
    lines = [lines[0].replace("):", f", *, {bound}):" if bound else "):"), *lines[1:]]
    namespace = dict(globs)
    exec(compile("\n".join(lines), filename, "exec"), namespace)
    return namespace[lines[0][4 : lines[0].index("(")]]


def generate_structure(
    cls: Any, fields: list[WireField], hooks: list[Hook], forbid_extra_keys: bool, tag: str | None
) -> Hook:
    """The function building ``cls`` from a decoded object, given a hook per field.

    With a ``tag``, the object's ``"type"`` key is allowed beside the fields.
    """
    allowed = frozenset({f.wire for f in fields} | ({"type"} if tag is not None else set()))
    globs: dict[str, Any] = {
        "__cls": cls,
        "__MISSING": MISSING,
        "__Invalid": Invalid,
        "__note": note,
        "__cve": ClassValidationError,
        "__feke": ForbiddenExtraKeysError,
        "__allowed": allowed,
        "__explain": construction_errors,
        "__wires": {f.name: f.wire for f in fields},
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
        guard = INLINE_GUARDS.get(hook)
        call = f"{v} = __h{i}({v})"
        if guard is not None:  # the hook is called only to convert or fail
            call = f"{v} = {v} if {guard.format(v=v)} else __h{i}({v})"
        catch = f"except Exception as e: errors.append(__note(e, {f.wire!r}, __t{i}))"
        if f.default is attrs.NOTHING and not f.optional:
            lines += [
                f"  {v} = o.get({f.wire!r}, __MISSING)",
                f"  if {v} is __MISSING:",
                f"    errors.append(__note(__Invalid({REQUIRED!r}), {f.wire!r}, __t{i}))",
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
        elif isinstance(f.default, _FACTORY) and f.default.takes_self:
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
        elif isinstance(f.default, _FACTORY):
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
    # On failure (a validator, a converter, __attrs_post_init__), find the field to blame.
    values = ", ".join(f"{f.name!r}: v{i}" for i, f in enumerate(fields))
    lines += [
        f"  if errors: raise __cve({'While structuring ' + name!r}, errors, __cls)",
        "  try:",
        f"    return __cls({', '.join(call_args)})",
        "  except Exception as e:",
        f"    errors = __explain(__cls, e, {{{values}}}, __wires)",
        f"    raise __cve({'While structuring ' + name!r}, errors, __cls) from None",
    ]
    return _compile(lines, globs, f"<structure {name}>")


def generate_unstructure(
    cls: Any, fields: list[WireField], hooks: list[Hook], tag: str | None
) -> Hook:
    """The function turning a ``cls`` instance into a wire object, given a hook per field.

    With a ``tag``, the object starts with ``"type": tag``.
    """
    globs: dict[str, Any] = {}
    items = [f"'type': {tag!r}"] if tag is not None else []
    optional_lines: list[str] = []
    for i, (f, hook) in enumerate(zip(fields, hooks, strict=True)):
        globs[f"__h{i}"] = hook
        value = f"v.{f.name}"
        if f.optional:
            # Omitted, not null: JS validators (zod's .optional()) reject null.
            call = _unstructure_call(hook, i, "x")
            optional_lines += [f"  x = {value}", f"  if x is not None: d[{f.wire!r}] = {call}"]
        else:
            items.append(f"{f.wire!r}: " + _unstructure_call(hook, i, value))
    lines = [
        "def unstructure(v):",
        f"  d = {{{', '.join(items)}}}",
        *optional_lines,
        "  return d",
    ]
    return _compile(lines, globs, f"<unstructure {cls.__qualname__}>")


def _unstructure_call(hook: Hook, i: int, value: str) -> str:
    """The expression unstructuring ``value`` with field ``i``'s hook."""
    if hook is identity:
        return value
    guard = INLINE_GUARDS.get(hook)
    if guard is None:
        return f"__h{i}({value})"
    # ``value`` read once, into a name of the field's own.
    return f"(u{i} if {guard.format(v=f'(u{i} := {value})')} else __h{i}(u{i}))"
