"""What a hook is: the shape of every structure and unstructure function.

A structure hook takes a decoded wire value (and, from cattrs, an unused type)
and returns the Python value; an unstructure hook goes back. Hooks are found
and cached by the converter, and called directly by the generated code.
"""

# Hooks take and return any wire value: this is where cattrs' ``Any`` lives.
# ruff: noqa: ANN401

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Hook", "HookFor", "identity", "identity_factory"]

Hook = Callable[..., Any]
# The converter's hook lookup for a type, given to the factories of nested types.
HookFor = Callable[[Any], Hook]


def identity(value: Any, _type: Any = None) -> Any:
    """The hook of values that are the same in Python and on the wire.

    The generated code compares hooks with it (``is``) to skip the call.
    """
    return value


def identity_factory(_tp: Any) -> Hook:
    return identity
