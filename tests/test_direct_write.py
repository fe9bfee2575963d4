"""Frames are written straight to the socket when the session's writer is idle.

A handler's first reply, and the first broadcast frame since the writer parked.

The embedded server only (it owns the socket). What must hold whatever the kernel
takes at once: every frame arrives whole and in order, and nothing is ever written
to a socket that is closed.
"""

from __future__ import annotations

import os

import orjson
import pytest
import trio
import trio.testing

import trio_rooms.transports._stream_connection as stream_connection
from trio_rooms import Rooms, RoomsConfig
from trio_rooms._core.outbound import TEXT, Frame, OutboundQueue

from .chat_app import ChatRoom
from .sockets import open_raw

BIG = 600_000  # more than a loopback socket takes at once


@pytest.mark.embedded_only("the direct write is the embedded server's")
async def test_a_partial_direct_write_is_finished_by_the_writer_in_order(
    port: int, rooms: Rooms[ChatRoom], monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[tuple[int, int]] = []  # (bytes offered, bytes the kernel took)
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        sent = real_write(fd, data)
        writes.append((len(data), sent))
        return sent

    monkeypatch.setattr(stream_connection.os, "write", spy)
    async with open_raw(port, "/rooms/lobby/websocket", rcvbuf=4096) as client:
        assert orjson.loads(await client.receive_text())["type"] == "userJoined"
        for text in ("a" * BIG, "after"):
            await client.send_text(orjson.dumps({"type": "whisper", "text": text}).decode())
        with trio.fail_after(10):
            first = orjson.loads(await client.receive_text())
            second = orjson.loads(await client.receive_text())
    assert first["text"] == "a" * BIG  # whole: the writer sent what the kernel left
    assert second["text"] == "after"  # and the reply queued behind it came after
    assert any(sent < offered for offered, sent in writes), writes  # a partial write


@pytest.mark.embedded_only("the direct write is the embedded server's")
async def test_a_broadcast_is_written_at_once_and_a_partial_one_finished_in_order(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[tuple[int, int]] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        sent = real_write(fd, data)
        writes.append((len(data), sent))
        return sent

    async with (
        open_raw(port, "/rooms/lobby/websocket?name=slow", rcvbuf=4096) as slow,
        open_raw(port, "/rooms/lobby/websocket?name=fast") as fast,
    ):
        await slow.receive_text()  # its own join
        await slow.receive_text()  # fast's join
        await fast.receive_text()
        monkeypatch.setattr(stream_connection.os, "write", spy)
        for text in ("b" * BIG, "after"):
            await fast.send_text(orjson.dumps({"type": "message", "text": text}).decode())
        with trio.fail_after(10):
            for client in (fast, slow):
                assert orjson.loads(await client.receive_text())["text"] == "b" * BIG
                assert orjson.loads(await client.receive_text())["text"] == "after"
    assert any(sent < offered for offered, sent in writes), writes  # slow's was partial
    assert len(writes) >= 2  # the first frame went out at once to both


@pytest.mark.embedded_only("the direct write is the embedded server's")
async def test_a_broadcast_to_idle_sessions_is_one_write_each_and_wakes_no_writer(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broadcast to sessions whose writers are idle is written to each socket at once,
    in one write per recipient, and none of their writer tasks takes a step for it."""
    writes: list[int] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        writes.append(fd)
        return real_write(fd, data)

    counter = _WriterSteps()
    async with (
        open_raw(port, "/rooms/lobby/websocket?name=a") as a,
        open_raw(port, "/rooms/lobby/websocket?name=b") as b,
        open_raw(port, "/rooms/lobby/websocket?name=c") as c,
    ):
        clients = (a, b, c)
        for index, client in enumerate(clients):
            for _ in range(len(clients) - index):  # its own join and those after it
                await client.receive_text()
        await trio.testing.wait_all_tasks_blocked()
        monkeypatch.setattr(stream_connection.os, "write", spy)
        trio.lowlevel.add_instrument(counter)
        try:
            await a.send_text(orjson.dumps({"type": "message", "text": "hi"}).decode())
            with trio.fail_after(10):
                for client in clients:
                    assert orjson.loads(await client.receive_text())["text"] == "hi"
            await trio.testing.wait_all_tasks_blocked()
        finally:
            trio.lowlevel.remove_instrument(counter)
        assert (len(writes), len(set(writes)), counter.steps) == (3, 3, 0)


class _WriterSteps(trio.abc.Instrument):
    """Counts the steps of the sessions' writer tasks while installed."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("._write_loop"):
            self.steps += 1


@pytest.mark.embedded_only("the direct write is the embedded server's")
async def test_replies_in_a_burst_keep_their_order(port: int) -> None:
    async with open_raw(port, "/rooms/lobby/websocket") as client:
        await client.receive_text()
        for n in range(200):
            await client.send_text(orjson.dumps({"type": "whisper", "text": str(n)}).decode())
        with trio.fail_after(10):
            replies = [orjson.loads(await client.receive_text())["text"] for _ in range(200)]
    assert replies == [str(n) for n in range(200)]


async def test_nothing_is_written_directly_to_a_closed_socket() -> None:
    """Its descriptor number may belong to another connection by then."""
    left, right = trio.socket.socketpair()
    stream = trio.SocketStream(left)
    connection = stream_connection.StreamConnection(stream, RoomsConfig())
    queue = OutboundQueue(8, 1024)
    connection.attach(queue)
    assert queue.direct is not None
    assert queue.direct([Frame(TEXT, b"open")]) == b""  # written whole
    await stream.aclose()
    assert queue.direct([Frame(TEXT, b"closed")]) is None  # refused: not written anywhere
    right.close()


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(rate_limit=None)  # the burst test sends 200 at once
