"""``JsonCodec``: messages as JSON text, through orjson."""

from __future__ import annotations

from typing import ClassVar, Literal, final

import orjson

from .._errors import DecodeError
from ._base import BaseCodec, MsgT
from ._bytes import BytesAs
from ._failures import describe_error

__all__ = ["JsonCodec"]

# orjson refuses input nested deeper than this, before building anything.
JSON_MAX_DEPTH = 1024


@final
class JsonCodec(BaseCodec[MsgT]):
    """Messages as JSON objects, sent in text frames.

    ::

        codec = JsonCodec(SendChat, SetName)   # Codec[SendChat | SetName]
        codec.encode(SetName(name="ada"))       # b'{"type":"setName","name":"ada"}'
        codec.decode('{"type":"setName","name":"ada"}')

    Decoding is strict: no coercion between types (an int is accepted for a
    float), no extra keys unless ``forbid_extra_keys=False``, no NaN or
    infinities, integers within 64 bits.
    """

    __slots__ = ()
    _bytes_as: ClassVar[BytesAs] = "base64"

    @property
    def format(self) -> Literal["json"]:
        """``"json"``: frames are text."""
        return "json"

    def encode(self, message: MsgT) -> bytes:
        """The UTF-8 JSON text of ``message``, ready for a text frame.

        Raises:
            TypeError: ``message`` is not an instance of one of the codec's classes.
            ValueError: ``message`` holds an integer beyond 64 bits or a float that
                is not finite.
        """
        # `_to_object` inline: this is every send's path.
        unstructure = self._unstructure.get(type(message))
        obj = self._to_object(message) if unstructure is None else unstructure(message)
        try:
            return orjson.dumps(obj)
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"cannot encode {type(message).__qualname__}: {exc}") from exc

    def decode(self, data: bytes | str) -> MsgT:
        """The message in the JSON text ``data`` (UTF-8 if bytes).

        Raises:
            DecodeError: ``data`` is not valid JSON or not one of the codec's
                messages; nothing else is raised.
        """
        try:
            # Declared, not `cast` below: a call per message. Checked to be a dict next.
            fields: dict[str, object] = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            reason = str(exc)
            if reason.startswith("depth limit exceeded"):
                raise DecodeError(
                    f"nesting too deep: more than {JSON_MAX_DEPTH} levels", frame=data
                ) from exc
            raise DecodeError(f"invalid JSON: {reason[:200]}", frame=data) from exc
        if type(fields) is not dict:
            raise DecodeError(f"expected a JSON object, got {type(fields).__name__}", frame=data)
        # `_from_object`'s common case inline (a known tag of a message that is not
        # recursive): this is every message's path. Anything else goes through it.
        tag = fields.get("type")
        structure = self._structure.get(tag) if type(tag) is str else None
        if structure is None or tag in self._deep:
            return self._from_object(fields, data)
        try:
            return structure(fields)
        except Exception as exc:
            raise DecodeError(describe_error(exc), frame=data) from exc
