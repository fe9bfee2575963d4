"""``ValueCodec``: one plain attrs class (no ``"type"`` tag) as a wire value, per format.

What a message is to `JsonCodec` and `MsgpackCodec`, a value nested inside a library
frame is here: presence metadata. The same strict rules (`_converter`): no coercion,
lowerCamelCase keys by default, extra keys rejected, bytes as base64 text in JSON and
as bin in msgpack. It works on decoded objects, so a frame that holds many values is
encoded once, whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, cast, final

import attrs

from .._errors import DecodeError
from ._base import WireFormat
from ._converter import WireConverter
from ._depth import MAX_RECURSIVE_DEPTH, too_deep
from ._failures import describe_error

__all__ = ["ValueCodec"]

T = TypeVar("T")


@final
class ValueCodec(Generic[T]):
    """Turns instances of the attrs class ``cls`` into wire objects of ``wire`` and back.

    Raises:
        TypeError: ``cls`` is not an attrs class, or holds a type the wire cannot carry.
    """

    __slots__ = ("_cls", "_deep", "_structure", "_unstructure", "format")

    def __init__(
        self, cls: type[T], wire: WireFormat, *, camel_case: bool, forbid_extra_keys: bool
    ) -> None:
        if not attrs.has(cls):
            raise TypeError(f"expected an attrs class, got {cls!r}")
        converter = WireConverter(
            camel_case=camel_case,
            forbid_extra_keys=forbid_extra_keys,
            bytes_as="base64" if wire == "json" else "bin",
        )
        self._cls = cls
        self.format: WireFormat = wire
        self._structure: Callable[[object], object] = converter.structure_hook(cls)
        self._unstructure: Callable[[object], object] = converter.unstructure_hook(cls)
        self._deep = converter.is_recursive(cls)

    def to_wire(self, value: T) -> object:
        """``value`` as the decoded wire object (a dict for an attrs class).

        Raises:
            TypeError: ``value`` is not an instance of the codec's class.
        """
        if not isinstance(value, self._cls):
            raise TypeError(f"expected a {self._cls.__qualname__}, got {type(value).__qualname__}")
        return self._unstructure(value)

    def from_wire(self, obj: object) -> T:
        """The instance in the decoded wire object ``obj``.

        Raises:
            DecodeError: ``obj`` does not fit the class; the message names the path of
                each bad field (``expected str @ $.name``).
        """
        if self._deep and too_deep(obj, MAX_RECURSIVE_DEPTH):
            raise DecodeError(f"nesting too deep: more than {MAX_RECURSIVE_DEPTH} levels")
        try:
            return cast("T", self._structure(obj))
        except Exception as exc:
            # Every failure of a generated structuring function is about the input.
            raise DecodeError(describe_error(exc)) from exc
