"""``JsonRecords``: plain attrs classes (HTTP bodies and results) as JSON.

The same strict rules as messages (see `_converter`), without the ``"type"`` tag:
no coercion, lowerCamelCase keys by default, extra keys rejected, ``None`` optional
fields omitted, and failures described with the wire path of each bad field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast, final

import orjson
from attrs import AttrsInstance

from .._errors import DecodeError
from ._converter import WireConverter
from ._depth import MAX_RECURSIVE_DEPTH, too_deep
from ._failures import describe_error

__all__ = ["JsonRecords"]

T = TypeVar("T")


@final
class JsonRecords:
    """Decodes JSON into plain attrs classes and encodes attrs instances as JSON.

    Args:
        camel_case: Put field names on the wire in lowerCamelCase.
        forbid_extra_keys: Reject objects with keys that name no field.
    """

    __slots__ = ("_converter", "_deep", "_structure", "_unstructure")

    def __init__(self, *, camel_case: bool = True, forbid_extra_keys: bool = True) -> None:
        # JSON bodies: bytes as base64 strings, as in the JSON codec.
        self._converter = WireConverter(
            camel_case=camel_case, forbid_extra_keys=forbid_extra_keys, bytes_as="base64"
        )
        self._structure: dict[type, Callable[[object], object]] = {}
        self._unstructure: dict[type, Callable[[object], object]] = {}
        self._deep: set[type] = set()

    def check(self, cls: type) -> None:
        """Build the decoder of ``cls`` now.

        Raises:
            TypeError: ``cls`` is not an attrs class the wire can carry.
        """
        self._structure_fn(cls)

    def decode(self, cls: type[T], data: bytes) -> T:
        """The ``cls`` instance in the JSON text ``data``.

        Raises:
            DecodeError: ``data`` is not JSON or does not fit ``cls``; the message
                names the path of each bad field (``expected str @ $.message``).
        """
        structure = self._structure_fn(cls)
        try:
            obj: object = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"invalid JSON: {str(exc)[:200]}") from exc
        if cls in self._deep and too_deep(obj, MAX_RECURSIVE_DEPTH):
            raise DecodeError(f"nesting too deep: more than {MAX_RECURSIVE_DEPTH} levels")
        try:
            return cast("T", structure(obj))
        except Exception as exc:
            # Every failure of a generated structuring function is about the input.
            raise DecodeError(describe_error(exc)) from exc

    def encode(self, value: AttrsInstance) -> bytes:
        """The UTF-8 JSON text of ``value``.

        Raises:
            TypeError: ``value``'s class holds a type the wire cannot carry.
            ValueError: ``value`` holds an integer beyond 64 bits or a float that is
                not finite.
        """
        cls = type(value)
        unstructure = self._unstructure.get(cls)
        if unstructure is None:
            unstructure = self._unstructure[cls] = self._converter.unstructure_hook(cls)
        try:
            return orjson.dumps(unstructure(value))
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"cannot encode {cls.__qualname__}: {exc}") from exc

    def _structure_fn(self, cls: type) -> Callable[[object], object]:
        structure = self._structure.get(cls)
        if structure is None:
            structure = self._structure[cls] = self._converter.structure_hook(cls)
            if self._converter.is_recursive(cls):
                self._deep.add(cls)
        return structure
