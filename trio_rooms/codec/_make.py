"""``make_codec``: a codec chosen by wire format at run time."""

from __future__ import annotations

from ._base import Codec, MsgT, WireFormat
from ._json import JsonCodec
from ._msgpack import MsgpackCodec

__all__ = ["make_codec"]


def make_codec(
    format: WireFormat,
    *classes: type[MsgT],
    camel_case: bool = True,
    forbid_extra_keys: bool = True,
) -> Codec[MsgT]:
    """A :class:`JsonCodec` or :class:`MsgpackCodec` for ``classes``.

    Args:
        format: ``"json"`` or ``"msgpack"``, for example from ``?format=`` in
            the connection URL.
        *classes: The message classes; see :class:`JsonCodec`.
        camel_case: Field names in lowerCamelCase on the wire.
        forbid_extra_keys: Reject objects with keys that name no field.

    Raises:
        ValueError: ``format`` is neither ``"json"`` nor ``"msgpack"``.
        TypeError: See :class:`JsonCodec`.
    """
    if format == "json":
        return JsonCodec(*classes, camel_case=camel_case, forbid_extra_keys=forbid_extra_keys)
    if format == "msgpack":
        return MsgpackCodec(*classes, camel_case=camel_case, forbid_extra_keys=forbid_extra_keys)
    raise ValueError(f"unknown wire format {format!r}: expected 'json' or 'msgpack'")
