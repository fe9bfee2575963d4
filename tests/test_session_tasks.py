"""A session runs in its transport's task: no task of it only waits, and a shutdown still flushes.

The embedded server's connection task runs the session's handler itself, which reads
between messages; the session starts its reader and writer only when it needs them (a
hook waits, a frame cannot be written at once). Cancelling the server closes each
session with 1001 after what was queued for it, as before.
"""

from __future__ import annotations

import attrs
import orjson
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Rooms, RoomsConfig, Session
from trio_rooms._core.session import runner_of

from .sockets import CLOSE, TEXT, ServerFrame, client_frame, close_payload, open_raw

#: Frames queued for a client that does not read: more than its socket buffers hold.
FLOOD = 200
#: The tasks an idle session adds: its transport's, which runs its handler and reads.
TASKS_PER_SESSION = 1


@attrs.frozen
class Blob(Message):
    n: int
    text: str


class FloodSession(Session[None, Blob, Blob, "FloodRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        if self.request.query.get("flood"):
            for n in range(FLOOD):
                self.send(Blob(n, "x" * 65536))
            self.room.flooded.set()

    async def on_message(self, message: Blob) -> None:
        pass


class FloodRoom(Room[FloodSession]):
    async def on_start(self) -> None:
        self.flooded = trio.Event()


def _tasks() -> int:
    """Every task of this run, from the root down."""
    count = 0
    root = trio.lowlevel.current_root_task()
    assert root is not None
    pending = [root]
    while pending:
        task = pending.pop()
        count += 1
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


async def test_an_idle_session_adds_one_task_and_none_only_waits(
    nursery: trio.Nursery,
) -> None:
    """Five idle connections add one task each: their transport's, no reader or writer."""
    async with trio_rooms.open_rooms(FloodRoom) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        async with open_raw(port, "/rooms/idle/websocket"):
            await rooms.wait_statistics(lambda stats: stats.sessions == 1)
            await trio.testing.wait_all_tasks_blocked()
            before = _tasks()
            async with (
                open_raw(port, "/rooms/idle/websocket"),
                open_raw(port, "/rooms/idle/websocket"),
                open_raw(port, "/rooms/idle/websocket"),
                open_raw(port, "/rooms/idle/websocket"),
                open_raw(port, "/rooms/idle/websocket"),
            ):
                await rooms.wait_statistics(lambda stats: stats.sessions == 6)
                await trio.testing.wait_all_tasks_blocked()
                assert _tasks() - before == 5 * TASKS_PER_SESSION
        nursery.cancel_scope.cancel()


async def test_cancelling_the_server_flushes_a_full_queue_before_the_1001(
    nursery: trio.Nursery,
) -> None:
    """A client that had stopped reading still gets every frame queued for it, then 1001."""
    config = RoomsConfig(outbound_max_messages=4 * FLOOD, outbound_max_bytes=32 * 2**20)
    server = trio.CancelScope()

    async def serve(rooms: Rooms[FloodRoom], *, task_status: trio.TaskStatus[int]) -> None:
        with server:
            await trio_rooms.serve_websocket(rooms, "127.0.0.1", 0, task_status=task_status)

    async with trio_rooms.open_rooms(FloodRoom, config=config) as rooms:
        port: int = await nursery.start(serve, rooms)
        async with open_raw(port, "/rooms/flood/websocket?flood=1", rcvbuf=4096) as client:
            room = await rooms.get("flood")
            await room.flooded.wait()
            (session,) = room.sessions.values()
            # More than the sockets hold: the queue still has frames to flush.
            assert len(runner_of(session).outbound) > 0
            server.cancel()  # the client reads nothing until now
            frames: list[ServerFrame] = []
            while (frame := await client.receive_frame()) is not None:
                frames.append(frame)
                if frame.opcode == CLOSE:  # answered, so the server need not wait for it
                    await client.send(client_frame(CLOSE, close_payload(1001)))
        texts = [frame for frame in frames if frame.opcode == TEXT]
        assert [orjson.loads(frame.payload)["n"] for frame in texts] == list(range(FLOOD))
        assert frames[-1].opcode == CLOSE
        assert frames[-1].close_code == 1001
        assert session.closed


class HangingSession(Session[None, Blob, Blob, "HangingRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Blob) -> None:
        self.room.hanging.set()
        try:
            await trio.sleep_forever()
        finally:
            self.room.cut.set()


class HangingRoom(Room[HangingSession]):
    async def on_start(self) -> None:
        self.hanging = trio.Event()
        self.cut = trio.Event()


async def test_cancelling_the_server_bounds_a_hook_that_outlives_its_peer(
    nursery: trio.Nursery,
) -> None:
    """A hook still running after its peer left gets close_timeout once the server is cancelled."""
    config = RoomsConfig(close_timeout=0.5)
    server = trio.CancelScope()
    served = trio.Event()

    async def serve(rooms: Rooms[HangingRoom], *, task_status: trio.TaskStatus[int]) -> None:
        with server:
            await trio_rooms.serve_websocket(rooms, "127.0.0.1", 0, task_status=task_status)
        served.set()

    async with trio_rooms.open_rooms(HangingRoom, config=config) as rooms:
        port: int = await nursery.start(serve, rooms)
        async with open_raw(port, "/rooms/hang/websocket") as client:
            await client.send_text('{"type": "blob", "n": 1, "text": ""}')
            room = await rooms.get("hang")
            await room.hanging.wait()
            await client.send(client_frame(CLOSE, close_payload(1000)))
            assert await client.close_code() == 1000  # the peer is gone, the hook runs on
        server.cancel()
        with trio.fail_after(10 * config.close_timeout):
            await served.wait()
        assert room.cut.is_set()


class WaitingSession(Session[None, Blob, Blob, "WaitingRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Blob) -> None:
        if message.n == 0:
            self.room.waiting.set()
            await self.room.go.wait()
        self.send(message)


class WaitingRoom(Room[WaitingSession]):
    async def on_start(self) -> None:
        self.waiting = trio.Event()
        self.go = trio.Event()


async def test_a_hook_that_waits_starts_the_reader_which_queues_what_arrives_in_order(
    nursery: trio.Nursery,
) -> None:
    """A waiting hook starts the session's reader, and the frames it reads are handled in order."""
    async with trio_rooms.open_rooms(WaitingRoom) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        # A first session: the room's own tasks exist before the count.
        async with (
            open_raw(port, "/rooms/wait/websocket"),
            open_raw(port, "/rooms/wait/websocket") as client,
        ):
            await rooms.wait_statistics(lambda stats: stats.sessions == 2)
            await trio.testing.wait_all_tasks_blocked()
            before = _tasks()
            await client.send_text('{"type": "blob", "n": 0, "text": ""}')
            room = await rooms.get("wait")
            await room.waiting.wait()
            # The hook waits: the reader it started waits for the socket.
            await trio.testing.wait_all_tasks_blocked()
            assert _tasks() - before == 1  # its reader
            for n in (1, 2):
                await client.send_text(f'{{"type": "blob", "n": {n}, "text": ""}}')
            room.go.set()
            replies = [orjson.loads(await client.receive_text())["n"] for _ in range(3)]
        assert replies == [0, 1, 2]
        nursery.cancel_scope.cancel()


async def test_cancelling_the_server_closes_a_session_without_tasks_with_1001_in_time(
    nursery: trio.Nursery,
) -> None:
    """A session with no reader or writer sees the server cancelled: 1001, within close_timeout."""
    config = RoomsConfig(close_timeout=0.5)
    server = trio.CancelScope()
    served = trio.Event()

    async def serve(rooms: Rooms[FloodRoom], *, task_status: trio.TaskStatus[int]) -> None:
        with server:
            await trio_rooms.serve_websocket(rooms, "127.0.0.1", 0, task_status=task_status)
        served.set()

    async with trio_rooms.open_rooms(FloodRoom, config=config) as rooms:
        port: int = await nursery.start(serve, rooms)
        async with open_raw(port, "/rooms/idle/websocket"):
            # A first session: the room's own tasks exist before the count.
            await rooms.wait_statistics(lambda stats: stats.sessions == 1)
            room = await rooms.get("idle")
            (first,) = room.sessions
            await trio.testing.wait_all_tasks_blocked()
            before = _tasks()
            async with open_raw(port, "/rooms/idle/websocket") as client:
                await rooms.wait_statistics(lambda stats: stats.sessions == 2)
                await trio.testing.wait_all_tasks_blocked()
                assert _tasks() - before == TASKS_PER_SESSION
                (session,) = (s for key, s in room.sessions.items() if key != first)
                server.cancel()
                # Not answered: the session reads on for the peer's close, then gives up.
                assert await client.close_code() == 1001
                with trio.fail_after(10 * config.close_timeout):
                    await served.wait()
        assert session.closed
