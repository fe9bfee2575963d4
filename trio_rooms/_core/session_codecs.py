"""The codecs and outbound checks of a session class, made once per class and setting."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from .._message import Message
from .._wire import LibraryFrame, encode_library_frame
from ..codec import Codec, MessageCheck, WireFormat, make_codec
from .outbound import BINARY, TEXT, Frame

__all__ = ["library_frame", "outbound_check", "session_codec"]


@cache
def session_codec(
    classes: tuple[type[Message], ...], wire: WireFormat, camel_case: bool, forbid_extra_keys: bool
) -> Codec[Message]:
    return make_codec(wire, *classes, camel_case=camel_case, forbid_extra_keys=forbid_extra_keys)


@cache
def outbound_check(
    classes: tuple[type[Message], ...], camel_case: bool
) -> Callable[[Message], None]:
    """The check of outbound messages of ``classes`` (``RoomsConfig.check_outbound``)."""
    return MessageCheck(*classes, camel_case=camel_case)


def library_frame(wire: WireFormat, frame: LibraryFrame) -> Frame:
    # Library frames carry no "type", so they never collide with user messages.
    return Frame(TEXT if wire == "json" else BINARY, encode_library_frame(wire, frame))
