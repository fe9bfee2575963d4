"""The session's inbox: frames from its reader to its handler, bounded and in order."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_rooms._core.inbox import Inbox


async def test_frames_come_out_in_order_and_a_full_inbox_would_block() -> None:
    """Up to its capacity frames queue without waiting; the next one would block."""
    inbox = Inbox(2)
    inbox.send_nowait("a")
    inbox.send_nowait(b"b")
    with pytest.raises(trio.WouldBlock):
        inbox.send_nowait("c")
    assert inbox.receive_nowait() == "a"
    assert await inbox.receive() == b"b"
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()


async def test_a_sender_waiting_on_a_full_inbox_goes_on_in_order_once_a_frame_is_taken() -> None:
    """The frame a sender waited to put is queued behind the others when room is made."""
    inbox = Inbox(1)
    inbox.send_nowait("a")
    sent = trio.Event()

    async def send_b() -> None:
        await inbox.send("b")
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_b)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert inbox.receive_nowait() == "a"
        await sent.wait()
        assert inbox.receive_nowait() == "b"


async def test_a_waiting_receiver_is_handed_the_next_frame() -> None:
    """A receiver waiting on an empty inbox gets the frame sent next, without queueing it."""
    inbox = Inbox(1)
    got: list[str | bytes] = []

    async def receive() -> None:
        got.append(await inbox.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        inbox.send_nowait("x")
        inbox.send_nowait("y")  # queued: the receiver took "x" directly
    assert got == ["x"]
    assert inbox.receive_nowait() == "y"


async def test_closing_the_send_side_ends_the_receiver_after_what_was_queued() -> None:
    """What was queued before the sender closed still comes out, then EndOfChannel."""
    inbox = Inbox(4)
    inbox.send_nowait("last")
    inbox.close_send()
    assert await inbox.receive() == "last"
    with pytest.raises(trio.EndOfChannel):
        await inbox.receive()

    waiting = Inbox(1)
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            with pytest.raises(trio.EndOfChannel):
                await waiting.receive()

        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        waiting.close_send()


async def test_closing_the_receive_side_breaks_the_sender_and_drops_the_queue() -> None:
    """Once the handler is gone, a waiting sender and later sends get BrokenResourceError."""
    inbox = Inbox(1)
    inbox.send_nowait("queued")
    async with trio.open_nursery() as nursery:

        async def send() -> None:
            with pytest.raises(trio.BrokenResourceError):
                await inbox.send("waiting")

        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()
        inbox.close_receive()
    with pytest.raises(trio.BrokenResourceError):
        inbox.send_nowait("later")


async def test_a_cancelled_wait_takes_nothing() -> None:
    """Cancelling a waiting receiver or sender leaves the inbox as it was."""
    inbox = Inbox(1)
    with trio.move_on_after(0.01):
        await inbox.receive()
    inbox.send_nowait("a")
    with trio.move_on_after(0.01):
        await inbox.send("b")
    assert inbox.receive_nowait() == "a"
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()


def test_an_inbox_holds_at_least_one_frame() -> None:
    """A capacity below one is refused with a clear error."""
    with pytest.raises(ValueError, match="at least one frame, got 0"):
        Inbox(0)
