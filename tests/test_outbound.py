"""The outbound queue's bounds: a byte ceiling judged at once, a message bound judged by time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_rooms._core.outbound import PING, TEXT, Frame, OutboundQueue, QueueOverflow
from trio_rooms._core.output_gate import Durability
from trio_rooms._delivery import COALESCE, DROP_OLDEST

from .steps import TaskSteps

TIMEOUT = 5.0


def _frame(size: int = 10) -> Frame:
    return Frame(TEXT, b"x" * size)


async def test_a_burst_over_the_message_bound_is_queued() -> None:
    """Frames past max_messages are accepted until the queue has been over it for the timeout."""
    queue = OutboundQueue(4, 1024 * 1024, TIMEOUT)
    for _ in range(100):
        assert queue.put(_frame())
    assert len(queue) == 100


async def test_a_queue_over_its_message_bound_for_longer_than_the_timeout_refuses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A frame that finds the queue over max_messages for more than the timeout overflows."""
    queue = OutboundQueue(4, 1024 * 1024, TIMEOUT)
    for _ in range(5):
        queue.put(_frame())  # the fifth starts the clock
    await trio.sleep(TIMEOUT - 0.1)  # sync-ok: mock clock: the timeout is what is tested
    assert queue.put(_frame())
    await trio.sleep(0.2)  # sync-ok: mock clock: the timeout is what is tested
    with pytest.raises(QueueOverflow):
        queue.put(_frame())


async def test_the_writer_catching_up_restarts_the_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once the writer takes frames and leaves fewer than max_messages, a new spell starts."""
    queue = OutboundQueue(4, 1024 * 1024, TIMEOUT)
    for _ in range(5):
        queue.put(_frame())
    await trio.sleep(TIMEOUT - 1)  # sync-ok: mock clock: the timeout is what is tested
    assert len(await queue.get_batch(1024 * 1024)) == 5
    for _ in range(5):
        queue.put(_frame())  # over again: the clock starts from now
    await trio.sleep(TIMEOUT - 1)  # sync-ok: mock clock: the timeout is what is tested
    assert queue.put(_frame())
    await trio.sleep(2)  # sync-ok: mock clock: the timeout is what is tested
    with pytest.raises(QueueOverflow):
        queue.put(_frame())


async def test_a_writer_that_leaves_the_queue_over_its_bound_does_not_restart_the_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Taking a batch that leaves max_messages or more queued keeps the spell going."""
    queue = OutboundQueue(4, 1024 * 1024, TIMEOUT)
    for _ in range(10):
        queue.put(_frame(100))
    await trio.sleep(TIMEOUT - 1)  # sync-ok: mock clock: the timeout is what is tested
    assert len(await queue.get_batch(500)) == 5  # five left: still over
    await trio.sleep(2)  # sync-ok: mock clock: the timeout is what is tested
    with pytest.raises(QueueOverflow):
        queue.put(_frame())


def test_the_byte_ceiling_refuses_a_frame_that_would_go_past_it() -> None:
    """With half the ceiling or more queued, a frame that does not fit overflows at once."""
    queue = OutboundQueue(256, 1000, TIMEOUT)
    assert queue.put(_frame(500))
    assert queue.put(_frame(500))  # exactly at the ceiling
    with pytest.raises(QueueOverflow):
        queue.put(_frame(1))


def test_a_frame_counts_for_at_most_half_the_ceiling() -> None:
    """Two frames of any size fit; then a frame that would go past the ceiling does not."""
    queue = OutboundQueue(256, 1000, TIMEOUT)
    assert queue.put(_frame(5000))
    assert queue.queued_bytes == 500
    assert queue.put(_frame(5000))
    with pytest.raises(QueueOverflow):
        queue.put(_frame(1))


def test_a_big_frame_fits_behind_small_ones_under_half_the_ceiling() -> None:
    """400 bytes queued leave room for a frame of any size and 100 more bytes."""
    queue = OutboundQueue(256, 1000, TIMEOUT)
    assert queue.put(_frame(400))
    assert queue.put(_frame(5000))
    assert queue.put(_frame(100))  # exactly at the ceiling
    with pytest.raises(QueueOverflow):
        queue.put(_frame(1))


async def test_the_writer_gives_back_what_a_big_frame_counted_for() -> None:
    """Taking a frame larger than half the ceiling frees what it counted for."""
    queue = OutboundQueue(256, 1000, TIMEOUT)
    queue.put(_frame(5000))
    assert len(await queue.get_batch(100)) == 1
    assert queue.queued_bytes == 0


def test_control_frames_ignore_the_bounds() -> None:
    """Pings and pongs are queued even when the queue is at its ceiling."""
    queue = OutboundQueue(1, 10, TIMEOUT)
    queue.put(_frame(10))
    queue.put_control(Frame(0x9, b""))
    assert len(queue) == 2


async def test_a_commit_that_does_not_cover_a_held_frame_leaves_its_writer_parked() -> None:
    """The output gate wakes a writer only once its next frame may go, not at every commit."""
    durability = Durability()
    queue = OutboundQueue(4, 1024 * 1024, durability=durability)
    taken: list[list[Frame]] = []
    counter = TaskSteps(name="writer")

    async def writer() -> None:
        while True:
            taken.append(await queue.get_batch(1024 * 1024))

    trio.lowlevel.add_instrument(counter)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer, name="writer")
        await trio.testing.wait_all_tasks_blocked()
        queue.put(Frame(TEXT, b"held", after=2))
        parked = counter.steps
        durability.advance(1)  # commit 1 is durable; the frame waits for commit 2
        await trio.testing.wait_all_tasks_blocked()
        assert (counter.steps, taken) == (parked, [])
        durability.advance(2)
        await trio.testing.wait_all_tasks_blocked()
        assert [[frame.payload for frame in batch] for batch in taken] == [[b"held"]]
        nursery.cancel_scope.cancel()
    trio.lowlevel.remove_instrument(counter)


async def test_a_commit_that_releases_several_frames_writes_them_in_one_write() -> None:
    """Frames one commit held leave in one write, in order, without waking the writer."""
    durability = Durability()
    queue = OutboundQueue(16, 1024 * 1024, durability=durability)
    writes: list[list[bytes]] = []
    taken: list[list[Frame]] = []

    def direct(frames: list[Frame]) -> bytes | None:
        writes.append([frame.payload for frame in frames])
        return b""

    queue.direct = direct

    async def writer() -> None:
        while True:
            taken.append(await queue.get_batch(1024 * 1024))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(3):
            queue.put(Frame(TEXT, b"%d" % n, after=1))
        queue.put(Frame(TEXT, b"later", after=2))
        durability.advance(1)
        assert writes == [[b"0", b"1", b"2"]]
        assert queue.queued_bytes == len(b"later")
        durability.advance(2)
        assert writes == [[b"0", b"1", b"2"], [b"later"]]
        await trio.testing.wait_all_tasks_blocked()
        assert (taken, queue.queued_bytes) == ([], 0)
        nursery.cancel_scope.cancel()


async def test_released_frames_the_socket_does_not_take_stay_queued_in_order() -> None:
    """A released batch the transport refuses is left to the writer, in its order."""
    durability = Durability()
    queue = OutboundQueue(16, 1024 * 1024, durability=durability)
    queue.direct = lambda frames: None
    taken: list[list[Frame]] = []

    async def writer() -> None:
        taken.append(await queue.get_batch(1024 * 1024))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(3):
            queue.put(Frame(TEXT, b"%d" % n, after=1))
        durability.advance(1)
        await trio.testing.wait_all_tasks_blocked()
    assert [[frame.payload for frame in batch] for batch in taken] == [[b"0", b"1", b"2"]]


async def test_clearing_keeps_the_rest_of_a_frame_written_in_part() -> None:
    """A queue cleared (a slow consumer) after a partial write still writes that frame's
    rest, then nothing else of what was queued, so the client never gets half a frame."""
    queue = OutboundQueue(16, 1024 * 1024)
    queue.direct = lambda frames: b"rest of it"
    taken: list[list[Frame]] = []

    async def writer() -> None:
        while batch := await queue.get_batch(1024 * 1024):
            taken.append(batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert queue.put_first(Frame(TEXT, b"start of it, rest of it"))
        queue.put(_frame())
        queue.clear()
        queue.close()
    assert [[frame.wire for frame in batch] for batch in taken] == [[b"rest of it"]]


async def test_a_broadcast_frame_written_at_once_costs_the_idle_writer_no_step() -> None:
    """The first frame of a turn that `put_first` writes straight to the transport leaves
    the parked writer parked: it is not woken to find an empty queue."""
    queue = OutboundQueue(16, 1024 * 1024)
    writes: list[list[bytes]] = []
    queue.direct = lambda frames: writes.append([frame.payload for frame in frames]) or b""
    counter = TaskSteps(name="writer")

    async def writer() -> None:
        while True:
            await queue.get_batch(1024 * 1024)

    trio.lowlevel.add_instrument(counter)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer, name="writer")
        await trio.testing.wait_all_tasks_blocked()
        parked = counter.steps
        assert queue.put_first(Frame(TEXT, b"lone"))
        await trio.testing.wait_all_tasks_blocked()
        assert (writes, counter.steps) == ([[b"lone"]], parked)
        nursery.cancel_scope.cancel()
    trio.lowlevel.remove_instrument(counter)


async def test_frames_after_a_direct_write_in_the_same_turn_go_out_in_one_batch() -> None:
    """In the turn of a direct write, further `put_first` frames are queued and the writer
    sends them in one batch; in a later turn the first frame is written at once again."""
    queue = OutboundQueue(16, 1024 * 1024)
    writes: list[list[bytes]] = []
    queue.direct = lambda frames: writes.append([frame.payload for frame in frames]) or b""
    taken: list[list[bytes]] = []

    async def writer() -> None:
        while True:
            taken.append([frame.payload for frame in await queue.get_batch(1024 * 1024)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(4):
            assert queue.put_first(Frame(TEXT, b"%d" % n))
        await trio.testing.wait_all_tasks_blocked()
        assert (writes, taken) == ([[b"0"]], [[b"1", b"2", b"3"]])
        assert queue.put_first(Frame(TEXT, b"next turn"))
        await trio.testing.wait_all_tasks_blocked()
        assert (writes, taken) == ([[b"0"], [b"next turn"]], [[b"1", b"2", b"3"]])
        nursery.cancel_scope.cancel()


def _marked(skipped: int) -> Frame:
    return Frame(TEXT, f"skipped {skipped}".encode())


def _entries(queue: OutboundQueue) -> int:
    return len(queue._frames)  # pyright: ignore[reportPrivateUsage] - what compaction bounds


async def test_coalesced_frames_are_compacted_in_order_with_one_mark_for_the_run() -> None:
    """40 updates of one key between two plain frames: the dead ones are compacted as they
    pile up, and the writer gets the first, one mark for the 39 skipped, the latest, the last."""
    queue = OutboundQueue(max_messages=1000, max_bytes=1_000_000)
    queue.marker = _marked
    queue.put(Frame(TEXT, b"first"))
    for n in range(40):
        queue.put(Frame(TEXT, f"k{n}".encode(), policy=COALESCE, key="k"))
        assert _entries(queue) <= 20  # never more dead entries than 16 past the live ones
    queue.put(Frame(TEXT, b"last"))
    assert len(queue) == 3
    batch = await queue.get_batch(1_000_000)
    assert [frame.payload for frame in batch] == [b"first", b"skipped 39", b"k39", b"last"]
    assert queue.queued_bytes == 0


async def test_drop_oldest_frames_past_the_bound_are_compacted_and_the_newest_kept() -> None:
    """A queue of 4 takes 40 drop-oldest frames: the 36 oldest are skipped (one mark), in order."""
    queue = OutboundQueue(max_messages=4, max_bytes=1_000_000)
    queue.marker = _marked
    for n in range(40):
        queue.put(Frame(TEXT, f"d{n}".encode(), policy=DROP_OLDEST))
        assert _entries(queue) <= 24  # 4 live and 20 dead: the 21st dead is compacted
    queue.put_control(Frame(PING, b""))  # a control frame is never dropped, nor judged
    batch = await queue.get_batch(1_000_000)
    assert [frame.payload for frame in batch] == [
        b"skipped 36",
        b"d36",
        b"d37",
        b"d38",
        b"d39",
        b"",
    ]


async def test_a_frame_put_wakes_the_parked_writer_once_and_a_second_reader_is_refused() -> None:
    """The writer parks in `get_batch` itself; a put reschedules it; two waiters are a bug."""
    queue = OutboundQueue(max_messages=10, max_bytes=1_000)
    batches: list[list[bytes]] = []

    async def writer() -> None:
        batches.append([frame.payload for frame in await queue.get_batch(1_000)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await queue.get_batch(1_000)
        queue.put(Frame(TEXT, b"a"))
        queue.put(Frame(TEXT, b"b"))  # the writer is woken already: no second wake
    assert batches == [[b"a", b"b"]]
