"""The ``Codec`` protocol and what the JSON and msgpack codecs share."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Generic, Literal, Protocol, TypeAlias, TypeVar

import attrs

from .._errors import DecodeError
from .._message import Message
from ._bytes import BytesAs
from ._converter import WireConverter
from ._depth import MAX_RECURSIVE_DEPTH, too_deep
from ._failures import describe_error, shorten

__all__ = ["BaseCodec", "Codec", "MsgT", "WireFormat"]

MsgT = TypeVar("MsgT", bound=Message)

WireFormat: TypeAlias = Literal["json", "msgpack"]
"""How messages travel: ``"json"`` in text frames, ``"msgpack"`` in binary frames."""

_MISSING = object()


class Codec(Protocol[MsgT]):
    """Turns the messages of one union into frame payloads and back.

    A codec holds no mutable state: share one between sessions and threads.
    """

    @property
    def format(self) -> WireFormat:
        """The wire format, which also says the kind of frame: text or binary."""
        ...

    @property
    def classes(self) -> tuple[type[MsgT], ...]:
        """The message classes, in the order given."""
        ...

    @property
    def tags(self) -> tuple[str, ...]:
        """The wire tags of :attr:`classes`, in the same order."""
        ...

    def encode(self, message: MsgT) -> bytes:
        """The frame payload for ``message``: ``{"type": tag, ...fields}``.

        Optional fields whose value is ``None`` are left out.

        Raises:
            TypeError: ``message`` is not an instance of one of the codec's classes.
            ValueError: ``message`` holds a value the wire cannot carry: an integer
                beyond 64 bits or a float that is not finite.
        """
        ...

    def decode(self, data: bytes | str) -> MsgT:
        """The message in the frame payload ``data``.

        Raises:
            DecodeError: ``data`` is not one of the codec's messages; the message
                says why, with the wire path of each bad field, and its ``frame`` is
                ``data``. Nothing else is raised, whatever ``data`` holds.
        """
        ...


def _check_message_class(cls: object) -> type[Message]:
    if isinstance(cls, type) and issubclass(cls, Message):
        message_cls: type[Message] = cls
        if attrs.has(message_cls):
            return cls
    raise TypeError(
        f"{cls!r} is not a message class: expected an attrs class deriving from trio_rooms.Message"
    )


class BaseCodec(Generic[MsgT]):
    """Construction, the tag table and top-level structuring, shared by the codecs.

    Args:
        *classes: The message classes, each an attrs class deriving from
            ``Message``, with distinct tags.
        camel_case: Put field names on the wire in lowerCamelCase (``user_id`` ->
            ``userId``); ``False`` keeps the Python names.
        forbid_extra_keys: Reject objects with keys that name no field.

    Raises:
        TypeError: No classes; a class that is not a message class; two classes
            with the same tag; a field type the wire cannot carry.
    """

    __slots__ = ("_classes", "_deep", "_structure", "_unknown_tag", "_unstructure")

    #: How the subclass's format carries ``bytes`` fields.
    _bytes_as: ClassVar[BytesAs]

    def __init__(
        self,
        *classes: type[MsgT],
        camel_case: bool = True,
        forbid_extra_keys: bool = True,
    ) -> None:
        if not classes:
            raise TypeError("a codec needs at least one message class")
        by_tag: dict[str, type[MsgT]] = {}
        for cls in classes:
            tag = _check_message_class(cls).tag
            if tag in by_tag:
                raise TypeError(
                    f"{by_tag[tag].__qualname__} and {cls.__qualname__} have the same tag {tag!r}"
                )
            by_tag[tag] = cls
        converter = WireConverter(
            camel_case=camel_case, forbid_extra_keys=forbid_extra_keys, bytes_as=self._bytes_as
        )
        self._classes = classes
        self._structure: dict[str, Callable[[dict[str, object]], MsgT]] = {
            tag: converter.structure_fn(cls, tag=tag) for tag, cls in by_tag.items()
        }
        self._unstructure: dict[type[MsgT], Callable[[MsgT], dict[str, object]]] = {
            cls: converter.unstructure_fn(cls, tag=tag) for tag, cls in by_tag.items()
        }
        # Tags of recursive messages: only their input needs a depth check.
        self._deep = frozenset(tag for tag, cls in by_tag.items() if converter.is_recursive(cls))
        self._unknown_tag = "expected one of " + ", ".join(repr(t) for t in sorted(by_tag))

    @property
    def classes(self) -> tuple[type[MsgT], ...]:
        """The message classes, in the order given."""
        return self._classes

    @property
    def tags(self) -> tuple[str, ...]:
        """The wire tags of :attr:`classes`, in the same order."""
        return tuple(cls.tag for cls in self._classes)

    def __repr__(self) -> str:
        names = ", ".join(cls.__qualname__ for cls in self._classes)
        return f"{type(self).__name__}({names})"

    def _to_object(self, message: MsgT) -> dict[str, object]:
        unstructure = self._unstructure.get(type(message))
        if unstructure is None:
            raise TypeError(f"{type(message).__qualname__} is not one of the messages of {self!r}")
        return unstructure(message)

    def _from_object(self, obj: dict[str, object], frame: bytes | str) -> MsgT:
        """The message in ``obj``, decoded from ``frame`` (which each `DecodeError` carries)."""
        tag = obj.get("type", _MISSING)
        if tag is _MISSING:
            raise DecodeError('missing "type"', frame=frame)
        if type(tag) is not str:
            raise DecodeError('"type" must be a string', frame=frame)
        structure = self._structure.get(tag)
        if structure is None:
            message = f"unknown message type {shorten(tag)!r}: {self._unknown_tag}"
            raise DecodeError(
                message if len(message) <= 1000 else message[:997] + "...", frame=frame
            )
        if tag in self._deep and too_deep(obj, MAX_RECURSIVE_DEPTH):
            raise DecodeError(
                f"nesting too deep: more than {MAX_RECURSIVE_DEPTH} levels", frame=frame
            )
        try:
            return structure(obj)
        except Exception as exc:
            # Every failure of a generated structuring function is about the input.
            raise DecodeError(describe_error(exc), frame=frame) from exc
