"""``bytes`` fields: a bin in msgpack, a base64 string in JSON, the same bytes in both.

JSON has no bytes, so the JSON codec writes the standard alphabet with padding
(RFC 4648 section 4, what ``btoa`` and zod's ``z.base64()`` use) and reads it
strictly: a string that is not exactly that (a missing ``=``, a URL-safe ``-``, a
newline) is refused at its field, never decoded to other bytes. Msgpack carries
bytes as they are, in a bin; a msgpack str is not bytes, as in JSON a list is not.
"""

# Hooks take any wire value.
# ruff: noqa: ANN401

from __future__ import annotations

import binascii
import re
from typing import Any, Literal, TypeAlias

from ._failures import Invalid
from ._hooks import Hook, identity

__all__ = ["BytesAs", "bytes_hooks"]

BytesAs: TypeAlias = Literal["bin", "base64"]
"""How a format carries bytes: msgpack's ``"bin"``, JSON's ``"base64"`` strings."""

# zod's z.base64(): groups of four, the last one padded; the empty string is b"".
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _structure_bin(value: Any, _type: Any = None) -> bytes:
    if type(value) is bytes:
        return value
    raise Invalid("expected bytes")


def _structure_base64(value: Any, _type: Any = None) -> bytes:
    if type(value) is str and _BASE64.fullmatch(value):
        return binascii.a2b_base64(value)
    raise Invalid("expected a base64 string" if type(value) is str else "expected str (base64)")


def _unstructure_base64(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def bytes_hooks(bytes_as: BytesAs) -> tuple[Hook, Hook]:
    """The structure and unstructure hooks of ``bytes`` in a format."""
    if bytes_as == "bin":
        return _structure_bin, identity
    return _structure_base64, _unstructure_base64
