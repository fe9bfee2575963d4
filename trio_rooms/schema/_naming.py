"""One exported name per definition, the same for every run.

A definition is named after its Python class. A message class that also appears
nested (without its tag) names that variant ``<Name>Nested``. Names the module
exports itself, JavaScript's reserved words and TypeScript's built-in type names
are never taken; two definitions wanting one name are told apart with ``_2``,
``_3``..., in the order of their module, then outer classes before nested ones.
The msgpack twin of a definition that holds bytes is ``<Name>Msgpack``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ._model import DefKey

__all__ = ["RESERVED", "assign_names", "msgpack_names"]

#: What the generated module defines besides the definitions.
_OWN = (
    "z",
    "schema",
    "msgpackSchema",
    "routes",
    "ClientMessage",
    "ServerMessage",
    "ClientMessageMsgpack",
    "ServerMessageMsgpack",
)
#: ECMAScript's reserved words (strict mode included).
_JS_WORDS = (
    "arguments await break case catch class const continue debugger default delete do else "
    "enum eval export extends false finally for function if implements import in instanceof "
    "interface let new null package private protected public return static super switch this "
    "throw true try typeof var void while with yield"
)
#: TypeScript's built-in type names, which no type alias may take.
_TS_TYPES = "any bigint boolean never number object string symbol undefined unknown"

RESERVED = frozenset((*_OWN, *_JS_WORDS.split(" "), *_TS_TYPES.split(" ")))

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_$]")


def assign_names(keys: Iterable[DefKey]) -> dict[DefKey, str]:
    """A distinct identifier, valid in TypeScript and JSON Pointer, for each key."""
    keys = list(keys)
    tagged = {cls for cls, tag in keys if tag is not None}
    wanted: dict[str, list[DefKey]] = {}
    for key in keys:
        wanted.setdefault(_candidate(key, tagged), []).append(key)
    names: dict[DefKey, str] = {}
    taken: set[str] = set(RESERVED)
    # First every name that only one definition wants, so that a suffixed name
    # never takes a class's own name.
    for name, claimants in wanted.items():
        if len(claimants) == 1 and name not in taken:
            names[claimants[0]] = name
            taken.add(name)
    for name in sorted(wanted):
        claimants = sorted(
            (k for k in wanted[name] if k not in names),
            key=lambda k: (k[0].__module__, k[0].__qualname__.count("."), k[0].__qualname__),
        )
        suffix = 1
        for key in claimants:
            candidate = name
            while candidate in taken:
                suffix += 1
                candidate = f"{name}_{suffix}"
            names[key] = candidate
            taken.add(candidate)
    return names


def msgpack_names(twins: Iterable[DefKey], names: Mapping[DefKey, str]) -> dict[DefKey, str]:
    """``names`` with each of ``twins`` renamed to its msgpack twin, ``<Name>Msgpack``."""
    result = dict(names)
    taken = set(RESERVED) | set(names.values())
    for key in sorted(twins, key=lambda k: names[k]):
        base = candidate = names[key] + "Msgpack"
        suffix = 1
        while candidate in taken:
            suffix += 1
            candidate = f"{base}_{suffix}"
        result[key] = candidate
        taken.add(candidate)
    return result


def _candidate(key: DefKey, tagged: set[type]) -> str:
    cls, tag = key
    name = _NOT_IDENTIFIER.sub("_", cls.__name__)
    if name[:1].isdigit():
        name = "_" + name
    if tag is None and cls in tagged:
        name += "Nested"
    return name
