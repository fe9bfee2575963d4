"""Client-to-server WebSocket frames (RFC 6455 section 5), parsed without wsproto or I/O.

`InboundParser` turns the bytes a client sends after its handshake into complete
messages, pings and the end of the stream, in the order they arrived. It answers the
errors the RFC defines with the close codes wsproto gives (1002 for a broken frame or
close frame, 1007 for text that is not UTF-8) and refuses a message over the size limit
(1009) by its header, before its payload is read. No extension is ever negotiated, so
the reserved bits must be clear.
"""

from __future__ import annotations

import codecs
from collections import deque
from typing import Final, final

import attrs

__all__ = ["Closed", "Failed", "InboundEvent", "InboundParser", "Ping"]

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_OPCODES: Final = frozenset({_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG})

# RFC 6455 section 7.4: the codes a peer may send. 1004 is reserved, 1005, 1006 and
# 1015 are never sent, 1014 and the rest up to 2999 are not assigned (wsproto agrees).
_CLOSE_CODES: Final = frozenset({1000, 1001, 1002, 1003, *range(1007, 1014)})

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")

# Returned as the next position to stop parsing what was fed: past the end of any piece.
_STOP: Final = 1 << 62


@final
@attrs.frozen
class Ping:
    """A ping: answer it with a pong carrying ``payload``."""

    payload: bytes


@final
@attrs.frozen
class Closed:
    """The client's close frame (1005 and no reason if it had no code): nothing follows."""

    code: int
    reason: str


@final
@attrs.frozen
class Failed:
    """The client broke the protocol (1002, 1007) or a limit (1009): close with ``code``.

    After a 1009 the parser goes on (the message's bytes are skipped); after any other
    failure it drops the rest of the bytes it was fed and starts afresh with the next.
    """

    code: int
    reason: str


#: What `InboundParser.events` holds: a complete text or binary message, or one of these.
InboundEvent = str | bytes | Ping | Closed | Failed


def unmask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the 4-byte masking ``key`` repeated (RFC 6455 section 5.3)."""
    size = len(payload)
    if not size:
        return payload
    mask = (key * (size // 4 + 1))[:size]
    # One big-integer XOR: linear, in C, whatever the size.
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        size, "little"
    )


@final
class InboundParser:
    """Parses one client's frames, fed in pieces cut anywhere.

    ``feed`` appends to `events`; the caller pops them. Fragmented messages are joined,
    control frames may come between their fragments, text is checked as UTF-8 as it
    arrives (a bad byte fails at once, not at the end of the message). Pongs are dropped.
    After a `Closed` everything fed is ignored.
    """

    __slots__ = (
        "_binary",
        "_closed",
        "_decoder",
        "_dropping",
        "_fin",
        "_key",
        "_max_size",
        "_opcode",
        "_pending",
        "_remaining",
        "_size",
        "_text",
        "events",
    )

    def __init__(self, max_message_size: int) -> None:
        #: What was parsed, in order.
        self.events: deque[InboundEvent] = deque()
        self._max_size = max_message_size
        self._closed = False
        # The start of a frame cut by the end of a piece: its header, or a control frame.
        self._pending = b""
        # The data frame being read: payload bytes still to come, its mask rotated to the
        # next byte, whether it ends its message.
        self._remaining = 0
        self._key = b""
        self._fin = False
        # The message being read: its opcode (0: none), size so far (headers' lengths),
        # whether it is over the limit (skipped), and its pieces (made when fragmented).
        self._opcode = 0
        self._size = 0
        self._dropping = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._text: list[str] | None = None
        self._binary: list[bytes] | None = None

    @property
    def idle(self) -> bool:
        """Whether it holds nothing: no event, and no part of a frame or message."""
        return not (self.events or self._pending or self._remaining or self._opcode or self._closed)

    def feed(self, data: bytes) -> None:
        """Parse ``data``, the next bytes from the client."""
        if self._closed:
            return
        if self._pending:
            data = self._pending + data
            self._pending = b""
        position, end = 0, len(data)
        while position < end:
            if self._remaining:
                position = self._payload(data, position)
            else:
                position = self._frame(data, position)

    def whole(self, data: bytes) -> str | bytes | None:
        """The message ``data`` is, if it is exactly one whole data frame of a small one.

        None if it is anything else (more or less than one frame, a fragment, a control
        frame, a message over the size limit, text that is not UTF-8), or if the parser
        is in the middle of something: `feed` it then. The common case of a client that
        sends one small message at a time, in one piece, without the event queue.
        """
        # A small frame's header: FIN and an opcode (no reserved bit), the mask bit and
        # a 7-bit length (126 and 127 announce longer lengths), then its 4-byte key.
        if len(data) < 6 or self._pending or self._remaining or self._opcode or self._closed:
            return None
        first = data[0]
        if first != 0x81 and first != 0x82:
            return None
        length = data[1] ^ 0x80  # over 125 unless masked with a 7-bit length
        if length > 125 or len(data) != 6 + length or length > self._max_size:
            return None
        # `unmask` inline (a call less): every message of a client, local or relayed,
        # comes here. An empty payload needs no XOR.
        key = data[2:6]
        payload = data[6:]
        if length:
            mask = (key * (length // 4 + 1))[:length]
            payload = (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
                length, "little"
            )
        if first == 0x82:
            return payload
        try:
            return payload.decode()
        except UnicodeDecodeError:
            return None  # `feed` fails it, with 1007

    def _frame(self, data: bytes, position: int) -> int:
        """Parse the frame at ``position``; where the next one starts (`_STOP`: stop here)."""
        end = len(data)
        if end - position < 2:
            return self._wait(data, position)
        first, second = data[position], data[position + 1]
        opcode = first & 0x0F
        length = second & 0x7F
        if opcode not in _OPCODES:
            return self._fail(f"unknown opcode {opcode:#x}")
        control = opcode >= _CLOSE
        if control and not first & 0x80:
            return self._fail("a fragmented control frame")
        if control and length > 125:
            return self._fail("a control frame of more than 125 bytes")
        head = position + 2
        if length == 126:
            if end - head < 2:
                return self._wait(data, position)
            length = int.from_bytes(data[head : head + 2], "big")
            head += 2
            if length < 126:
                return self._fail("a 2-byte length for a payload of less than 126 bytes")
        elif length == 127:
            if end - head < 8:
                return self._wait(data, position)
            length = int.from_bytes(data[head : head + 8], "big")
            head += 8
            if length < 65536:
                return self._fail("an 8-byte length for a payload of less than 64 KiB")
            if length >> 63:
                return self._fail("an 8-byte length with its most significant bit set")
        if first & 0x70:
            return self._fail("reserved bits set without an extension")
        if not second & 0x80:
            return self._fail("an unmasked frame from a client")
        if end - head < 4:
            return self._wait(data, position)
        key = data[head : head + 4]
        start = head + 4
        stop = start + length
        if control:
            if stop > end:  # at most 125 bytes: kept until whole
                return self._wait(data, position)
            if opcode == _PING:
                self.events.append(Ping(unmask(data[start:stop], key)))
            elif opcode == _CLOSE:
                return self._close(unmask(data[start:stop], key))
            return stop
        if opcode == _CONTINUATION:
            if not self._opcode:
                return self._fail("a continuation frame without a message to continue")
        elif self._opcode:
            return self._fail("a new message before the previous one was finished")
        else:
            self._opcode = opcode
        fin = bool(first & 0x80)
        if self._size + length > self._max_size and not self._dropping:
            self._drop()
        self._size += length
        if opcode and fin and stop <= end and not self._dropping:
            return self._whole(opcode, unmask(data[start:stop], key), stop)
        self._remaining, self._key, self._fin = length, key, fin
        if not length and self._piece(b"", frame_done=True):
            return _STOP
        return start

    def _payload(self, data: bytes, position: int) -> int:
        """Read more of the current data frame's payload; where its bytes stop."""
        take = min(self._remaining, len(data) - position)
        stop = position + take
        self._remaining -= take
        if self._dropping:
            if not self._remaining and self._fin:
                self._end_message()
            return stop
        key = self._key
        chunk = unmask(data[position:stop], key)
        shift = take % 4
        self._key = key[shift:] + key[:shift]  # the next byte's place in the mask
        return _STOP if self._piece(chunk, frame_done=not self._remaining) else stop

    def _whole(self, opcode: int, payload: bytes, stop: int) -> int:
        """The common case: a message in one frame that arrived in one piece."""
        self._end_message()
        if opcode == _TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                return self._fail("a text message that is not UTF-8", 1007)
            self.events.append(text)
        else:
            self.events.append(payload)
        return stop

    def _piece(self, chunk: bytes, *, frame_done: bool) -> bool:
        """Add ``chunk`` to the message; True if that failed it."""
        done = frame_done and self._fin
        if self._dropping:
            if done:
                self._end_message()
            return False
        if self._opcode == _TEXT:
            decoder = self._decoder
            if decoder is None:
                decoder = self._decoder = _Utf8Decoder()
            try:
                text = decoder.decode(chunk, done)  # a bad byte fails here, at once
            except UnicodeDecodeError:
                self._fail("a text message that is not UTF-8", 1007)
                return True
            parts = self._text
            if parts is None:
                parts = self._text = []
            if text:
                parts.append(text)
            if done:
                self.events.append("".join(parts))
                self._end_message()
        else:
            pieces = self._binary
            if pieces is None:
                pieces = self._binary = []
            if chunk:
                pieces.append(chunk)
            if done:
                self.events.append(b"".join(pieces))
                self._end_message()
        return False

    def _close(self, payload: bytes) -> int:
        ended = _close_frame(payload)
        if isinstance(ended, Failed):
            return self._fail(ended.reason, ended.code)
        self._closed = True
        self.events.append(ended)
        return _STOP

    def _drop(self) -> None:
        """The message is over the size limit: fail it, skip its bytes, parse on."""
        self.events.append(Failed(1009, "message too big"))
        self._dropping = True
        self._decoder = None
        self._text = self._binary = None

    def _end_message(self) -> None:
        self._opcode = self._size = 0
        self._dropping = False
        self._decoder = None
        self._text = self._binary = None

    def _wait(self, data: bytes, position: int) -> int:
        self._pending = data[position:]
        return _STOP

    def _fail(self, reason: str, code: int = 1002) -> int:
        """Report a broken stream; drop the rest of what was fed and start afresh."""
        self.events.append(Failed(code, reason))
        self._reset()
        return _STOP

    def _reset(self) -> None:
        self._pending = b""
        self._remaining = 0
        self._end_message()


def _close_frame(payload: bytes) -> Closed | Failed:
    """What a close frame's payload says (RFC 6455 section 5.5.1)."""
    if not payload:
        return Closed(1005, "")
    if len(payload) == 1:
        return Failed(1002, "a close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _CLOSE_CODES and not 3000 <= code <= 4999:
        return Failed(1002, f"a close frame with code {code}, which a peer may not send")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        return Failed(1007, "a close reason that is not UTF-8")
    return Closed(code, reason)
