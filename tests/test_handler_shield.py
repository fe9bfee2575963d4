"""A hook runs shielded from its server's cancellation, whenever that comes.

The handler raises its shield only once a hook waits (a hook that returns at once needs
none); these pin what that must keep: a hook handed a frame after the server was
cancelled still runs to its end, waits included, and the session then closes with 1001.
A hook that cancels the server itself before its first wait gets the cancellation at
that wait, trio's rule for a task that cancels its own caller (a lock's acquire, which
checks for it first, must not fail an assertion inside trio instead).
"""

from __future__ import annotations

import logging

import attrs
import orjson
import pytest
import trio
import trio.lowlevel

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Session

from .sockets import TEXT, client_frame, open_raw


@attrs.frozen
class Step(Message):
    #: "stop": cancel the server, then wait; "stop-lock": cancel it, then take a trio
    #: lock (its acquire checks for a cancellation first); "cancel": cancel it and return
    #: at once; "lock": take the lock.
    action: str
    n: int


@attrs.frozen
class Done(Message):
    n: int


class ShieldSession(Session[None, Done, Step, "ShieldRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_message(self, message: Step) -> None:
        room = self.room
        if message.action == "stop":
            room.server.cancel()  # the server's scope, from inside its own hook
            await trio.lowlevel.checkpoint()  # a wait after it: cancelled there
        elif message.action == "stop-lock":
            room.server.cancel()
            async with room.lock:  # cancelled at its first check, not an AssertionError
                pass
        elif message.action == "cancel":
            room.server.cancel()  # and no wait: the next frame is handled at once
        else:
            async with room.lock:
                pass
        # Not a reply: the reader, lent the reading at the wait, sees the server
        # cancelled and closes, and what is sent after that is dropped.
        room.ran.append(message.n)


class ShieldRoom(Room[ShieldSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.server = trio.CancelScope()
        self.lock = trio.Lock()
        self.ran: list[int] = []


def _step(action: str, n: int) -> bytes:
    return client_frame(TEXT, orjson.dumps({"type": "step", "action": action, "n": n}))


@pytest.mark.parametrize(
    ("data", "ran"),
    [
        # The hook cancels its server, then waits: the wait is cancelled.
        (_step("stop", 1), []),
        (_step("stop-lock", 1), []),
        # Two frames in one read: the second is handed over after the first hook
        # cancelled the server, with no wait between (no checkpoint saw it).
        (_step("cancel", 1) + _step("lock", 2), [1, 2]),
    ],
    ids=["own-cancel", "own-cancel-then-lock", "frame-after-cancel"],
)
async def test_a_hook_runs_to_its_end_when_the_server_is_cancelled(
    data: bytes, ran: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    # The raw client never answers the close: a short close_timeout ends each run.
    config = trio_rooms.RoomsConfig(close_timeout=0.2)
    async with trio_rooms.open_rooms(ShieldRoom, config=config) as rooms:
        room = await rooms.get("lobby")
        assert isinstance(room, ShieldRoom)

        async def serve(*, task_status: trio.TaskStatus[int]) -> None:
            with room.server:  # what the hooks cancel
                await trio_rooms.serve_websocket(rooms, "127.0.0.1", 0, task_status=task_status)

        async with trio.open_nursery() as nursery:
            port: int = await nursery.start(serve)
            async with open_raw(port, "/rooms/lobby/websocket") as client:
                await client.send(data)
                with trio.fail_after(10):
                    received = await client.receive_until_eof()
    assert room.ran == ran
    assert received[-1].close_code == 1001
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
