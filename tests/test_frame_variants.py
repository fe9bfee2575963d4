"""Valid but unusual client frames, and close frames of every kind, as RFC 6455 says.

Each case is named with the outcome the RFC gives it, checked against wsproto (the
reference), then against `InboundParser` fed whole, a byte per read, and through
`InboundParser.whole`; a few go through the embedded server over a socket too.
Non-minimal lengths are refused (1002): section 5.2 says "the minimal number of bytes
MUST be used to encode the length", and wsproto refuses them as well.
"""

from __future__ import annotations

import json

import pytest
import trio

from trio_rooms.transports._inbound import InboundParser

from .sockets import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, open_raw

# The fuzz battery's frame builder and its two readers (ours, wsproto's), not copies.
from .test_inbound import (
    _UNLIMITED,  # pyright: ignore[reportPrivateUsage]
    Outcome,
    _frame,  # pyright: ignore[reportPrivateUsage]
    _ours,  # pyright: ignore[reportPrivateUsage]
    _wsproto,  # pyright: ignore[reportPrivateUsage]
)

_ZERO = b"\x00\x00\x00\x00"


def _close(code: int, reason: bytes = b"") -> bytes:
    return _frame(CLOSE, code.to_bytes(2, "big") + reason)


CASES: dict[str, tuple[bytes, list[Outcome]]] = {
    "fragments-with-pings-and-pongs": (
        _frame(TEXT, b"he", fin=False)
        + _frame(PING, b"1")
        + _frame(CONTINUATION, b"l", fin=False)
        + _frame(PONG, b"unasked")
        + _frame(PING, b"")
        + _frame(CONTINUATION, b"lo"),
        [("ping", b"1"), ("ping", b""), ("text", "hello")],
    ),
    "binary-fragments-with-a-ping": (
        _frame(BINARY, b"\x00", fin=False) + _frame(PING, b"p") + _frame(CONTINUATION, b"\xff"),
        [("ping", b"p"), ("bytes", b"\x00\xff")],
    ),
    "a-125-byte-ping": (_frame(PING, bytes(range(125))), [("ping", bytes(range(125)))]),
    "a-126-byte-ping": (_frame(PING, bytes(126)), [("failed", 1002)]),
    "empty-text": (_frame(TEXT, b""), [("text", "")]),
    "empty-binary": (_frame(BINARY, b""), [("bytes", b"")]),
    "empty-fragments": (
        _frame(TEXT, b"", fin=False)
        + _frame(CONTINUATION, b"", fin=False)
        + _frame(CONTINUATION, b"x", fin=False)
        + _frame(CONTINUATION, b""),
        [("text", "x")],
    ),
    "empty-binary-fragments": (
        _frame(BINARY, b"", fin=False) + _frame(CONTINUATION, b""),
        [("bytes", b"")],
    ),
    "a-codepoint-cut-between-fragments": (
        _frame(TEXT, b"caf\xc3", fin=False) + _frame(CONTINUATION, b"\xa9"),
        [("text", "café")],
    ),
    "an-all-zero-mask": (
        _frame(TEXT, b"plain", key=_ZERO) + _frame(PING, b"p", key=_ZERO),
        [("text", "plain"), ("ping", b"p")],
    ),
    "a-16-bit-length-for-5-bytes": (_frame(TEXT, b"hello", form=126), [("failed", 1002)]),
    "a-64-bit-length-for-5-bytes": (_frame(TEXT, b"hello", form=127), [("failed", 1002)]),
    "a-64-bit-length-for-300-bytes": (_frame(BINARY, bytes(300), form=127), [("failed", 1002)]),
    "a-16-bit-length-for-126-bytes": (_frame(BINARY, bytes(126)), [("bytes", bytes(126))]),
    "a-64-bit-length-for-64-KiB": (_frame(BINARY, bytes(65536)), [("bytes", bytes(65536))]),
    "a-close-without-a-code": (_frame(CLOSE, b""), [("closed", 1005, "")]),
    "a-close-with-a-1-byte-payload": (_frame(CLOSE, b"\x03"), [("failed", 1002)]),
    "a-close-with-a-reason": (_close(1000, "bye ✓".encode()), [("closed", 1000, "bye ✓")]),
    "a-close-with-a-125-byte-payload": (
        _close(4000, b"r" * 123),
        [("closed", 4000, "r" * 123)],
    ),
    "a-close-with-a-reason-not-utf8": (_close(1000, b"\xff\xfe"), [("failed", 1007)]),
    "a-close-between-fragments": (
        _frame(TEXT, b"half", fin=False) + _close(1001),
        [("closed", 1001, "")],
    ),
    "a-fragmented-close": (_frame(CLOSE, b"\x03\xe8", fin=False), [("failed", 1002)]),
    **{
        f"a-close-with-code-{code}": (_close(code), [("closed", code, "")])
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999)
    },
    **{
        f"a-close-with-code-{code}-refused": (_close(code), [("failed", 1002)])
        for code in (999, 1004, 1005, 1006, 1015, 2999, 5000)
    },
}


@pytest.mark.parametrize(("data", "expected"), CASES.values(), ids=CASES.keys())
def test_each_variant_gives_what_the_rfc_and_wsproto_give(
    data: bytes, expected: list[Outcome]
) -> None:
    assert _wsproto([data], _UNLIMITED) == expected
    assert _ours([data], _UNLIMITED) == expected
    assert _ours([data[i : i + 1] for i in range(len(data))], _UNLIMITED) == expected


@pytest.mark.parametrize(("data", "expected"), CASES.values(), ids=CASES.keys())
def test_the_fast_path_says_what_feed_says_or_declines(
    data: bytes, expected: list[Outcome]
) -> None:
    """`whole` takes only a single small data frame, and then says what `feed` does."""
    taken = InboundParser(_UNLIMITED).whole(data)
    if taken is not None:
        assert expected == [("text" if isinstance(taken, str) else "bytes", taken)]


# ------------------------------------------------------------------ through the server


def _chat(text: str) -> bytes:
    return json.dumps({"type": "message", "text": text}).encode()


_SOCKET = pytest.mark.embedded_only("raw frames")
GUARD = 10.0


@_SOCKET
async def test_a_fragmented_message_with_pings_between_is_one_message(port: int) -> None:
    body = _chat("fragmented")
    async with open_raw(port, "/rooms/lobby/websocket") as client:
        with trio.fail_after(GUARD):
            assert (await client.receive_frame()) is not None  # its join
            await client.send(
                _frame(TEXT, body[:3], fin=False, key=_ZERO)
                + _frame(PING, bytes(range(125)))
                + _frame(CONTINUATION, b"", fin=False)
                + _frame(PONG, b"")
                + _frame(CONTINUATION, body[3:])
            )
            pong = await client.receive_frame()
            assert pong is not None
            assert (pong.opcode, pong.payload) == (PONG, bytes(range(125)))
            chat = json.loads(await client.receive_text())
            assert (chat["type"], chat["text"]) == ("chat", "fragmented"), chat


@_SOCKET
@pytest.mark.parametrize(
    ("close", "answer"),
    [
        (_frame(CLOSE, b""), None),
        (_close(1000, b"done"), 1000),
        (_close(1003), 1003),
        (_close(3000), 3000),
        (_close(4999, b"app"), 4999),
        (_close(1004), 1002),
        (_close(1005), 1002),
        (_close(1006), 1002),
        (_close(1015), 1002),
        (_close(999), 1002),
        (_close(5000), 1002),
        (_close(1000, b"\xff"), 1007),
    ],
)
async def test_a_close_frame_is_answered_as_the_rfc_says(
    port: int, close: bytes, answer: int | None
) -> None:
    """A valid close is echoed (RFC 6455 5.5.1; without a code, with none), a bad one failed."""
    async with open_raw(port, "/rooms/lobby/websocket") as client:
        with trio.fail_after(GUARD):
            assert (await client.receive_frame()) is not None
            await client.send(close)
            frames = await client.receive_until_eof()
    assert frames, "no close frame"
    assert frames[-1].opcode == CLOSE
    if answer is None:
        assert frames[-1].payload in (b"", b"\x03\xe8")  # no code, or a normal one
    else:
        assert frames[-1].close_code == answer
