"""Codecs: typed messages to WebSocket frame payloads and back."""

from ._base import Codec as Codec
from ._base import WireFormat as WireFormat
from ._check import MessageCheck as MessageCheck
from ._json import JsonCodec as JsonCodec
from ._make import make_codec as make_codec
from ._msgpack import MsgpackCodec as MsgpackCodec

__all__ = ["Codec", "JsonCodec", "MessageCheck", "MsgpackCodec", "WireFormat", "make_codec"]
