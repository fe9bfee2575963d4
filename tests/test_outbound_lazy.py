"""A queue with no writer yet (`OutboundQueue.start_lazily`): what goes at once, what starts one."""

from __future__ import annotations

import trio

from trio_rooms._core.outbound import PING, TEXT, Frame, OutboundQueue
from trio_rooms._core.output_gate import Durability


class _Lazy:
    """A lazy queue whose direct writes are recorded, and how often it asked for a writer."""

    def __init__(self, *, takes: bool = True) -> None:
        self.durability = Durability()
        self.queue = OutboundQueue(16, 1024 * 1024, durability=self.durability)
        self.written: list[bytes] = []
        self.starts = 0
        self._takes = takes
        self.queue.direct = self._direct
        self.queue.start_lazily(self._start)

    def _direct(self, frames: list[Frame]) -> bytes | None:
        if not self._takes:
            return None
        self.written.extend(frame.payload for frame in frames)
        return b""

    def _start(self) -> None:
        self.starts += 1


def test_a_frame_allowed_to_go_at_once_is_written_without_a_writer() -> None:
    """A reply allowed to go at once is written directly, and no writer is asked for."""
    lazy = _Lazy()
    lazy.queue.allow_direct()
    lazy.queue.put_now(Frame(TEXT, b"reply"))
    assert (lazy.written, lazy.starts, lazy.queue.idle) == ([b"reply"], 0, True)


def test_a_control_frame_is_written_without_a_writer() -> None:
    """A keepalive ping goes straight to the socket of a queue that has no writer."""
    lazy = _Lazy()
    lazy.queue.put_control(Frame(PING, b"k"))
    assert (lazy.written, lazy.starts, len(lazy.queue)) == ([b"k"], 0, 0)


async def test_queued_frames_ask_once_for_a_writer_that_takes_them_in_order() -> None:
    """Frames that cannot go at once start one writer, which gets them all, in order."""
    lazy = _Lazy(takes=False)
    lazy.queue.allow_direct()
    lazy.queue.put_now(Frame(TEXT, b"0"))  # the socket takes nothing: queued
    lazy.queue.put(Frame(TEXT, b"1"))
    lazy.queue.put_control(Frame(PING, b"2"))
    assert (lazy.starts, lazy.queue.idle) == (1, False)
    batch = await lazy.queue.get_batch(1024)
    assert [frame.payload for frame in batch] == [b"0", b"1", b"2"]
    assert lazy.starts == 1


async def test_a_held_frame_starts_the_writer_only_once_it_is_durable() -> None:
    """A frame the output gate holds is written directly once released, with no writer."""
    lazy = _Lazy()
    lazy.queue.put(Frame(TEXT, b"held", after=1))
    assert (lazy.written, lazy.starts) == ([], 0)
    lazy.durability.advance(1)
    assert (lazy.written, lazy.starts, len(lazy.queue)) == ([b"held"], 0, 0)


def test_the_close_asks_for_a_writer() -> None:
    """Closing a queue with no writer starts one, to write the close frame."""
    lazy = _Lazy()
    lazy.queue.close()
    assert (lazy.starts, lazy.queue.idle) == (1, False)


async def test_a_queue_started_with_frames_left_asks_for_a_writer_at_once() -> None:
    """A session run on with frames queued while it was parked starts its writer at once."""
    queue = OutboundQueue(16, 1024 * 1024)
    queue.put(Frame(TEXT, b"left"))
    starts: list[None] = []
    queue.start_lazily(lambda: starts.append(None))
    assert starts == [None]
    assert [frame.payload for frame in await queue.get_batch(1024)] == [b"left"]


async def test_a_broadcast_written_at_once_starts_no_writer_but_the_next_in_its_turn_does() -> None:
    """The first broadcast of a turn goes directly; one more in that turn starts the writer."""
    lazy = _Lazy()
    lazy.queue.put_first(Frame(TEXT, b"first"))
    assert (lazy.written, lazy.starts) == ([b"first"], 0)
    lazy.queue.put_first(Frame(TEXT, b"second"))  # the same turn: queued, for one batch
    assert (lazy.written, len(lazy.queue), lazy.starts) == ([b"first"], 1, 1)
    with trio.fail_after(1):
        assert [frame.payload for frame in await lazy.queue.get_batch(1024)] == [b"second"]
