"""The turn after a fan-out: the sender's handler reads its next frame itself.

A hook that broadcasts without waiting used to hand the session's reading to its reader
task, so that every next frame took a hop (reader, then handler) before its hook ran:
one more task step and run-loop turn per message of a sender, on the latency path of
every broadcast (issue 18, s2). The handler now reads on itself after a fan-out, as after
any hook that did not wait; the reader is only lent the reading while a hook waits.

What must hold across the change, for frames that fan out, wait, fail or reply, sent one
at a time or in one burst: each is handled once, in arrival order, holding the room's
gate; a hook's exception is reported and the next frame handled; a client that reads
nothing delays no one else.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import assert_never

import attrs
import orjson
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Rooms, RoomsConfig, Session

from .servers import Transport, start_server
from .sockets import TEXT, RawClient, client_frame, open_raw

# ------------------------------------------------------------------------------ the app


@attrs.frozen
class Fan(Message):
    """Broadcast `Fanned` ``n`` to the whole room, sender included, without waiting."""

    n: int
    text: str = ""


@attrs.frozen
class Wait(Message):
    """Wait (holding the room's gate), then broadcast `Fanned` ``n``."""

    n: int


@attrs.frozen
class Fail(Message):
    """Broadcast `Fanned` ``n``, then raise."""

    n: int


@attrs.frozen
class Mine(Message):
    """Reply `Fanned` ``n`` to the sender alone."""

    n: int


@attrs.frozen
class Fanned(Message):
    sender: str
    n: int
    text: str = ""


@attrs.frozen
class Joined(Message):
    """Sent to a session once it is in the room: its own id."""

    id: str


ClientMsg = Fan | Wait | Fail | Mine
ServerMsg = Fanned | Joined


class TurnSession(Session[None, ServerMsg, ClientMsg, "TurnRoom"]):
    async def create_data(self, request: ConnectRequest) -> None:
        return None

    async def on_connect(self) -> None:
        self.send(Joined(id=self.id))

    async def on_message(self, message: ClientMsg) -> None:
        room = self.room
        room.enter(self.id)
        try:
            match message:
                case Fan(n=n, text=text):
                    self.broadcast(Fanned(sender=self.id, n=n, text=text))
                case Wait(n=n):
                    # Waits that let every other task run: the gate keeps the others out.
                    for _ in range(3):
                        await trio.lowlevel.checkpoint()
                    self.broadcast(Fanned(sender=self.id, n=n))
                case Fail(n=n):
                    self.broadcast(Fanned(sender=self.id, n=n))
                    raise ValueError(f"fail {n}")
                case Mine(n=n):
                    self.send(Fanned(sender=self.id, n=n))
                case _:
                    assert_never(message)
        finally:
            room.leave(self.id, message)

    async def on_error(self, error: Exception) -> None:
        self.room.errors.append(str(error))  # not logged: the test expects these

    async def on_close(self, code: int, reason: str) -> None:
        self.room.closed.append((self.id, code))


class TurnRoom(Room[TurnSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        #: The session whose hook runs, and every time a second one entered meanwhile.
        self.inside: str | None = None
        self.overlaps: list[tuple[str, str]] = []
        #: What each session's hooks handled, in the order they ran.
        self.handled: dict[str, list[int]] = {}
        self.errors: list[str] = []
        self.closed: list[tuple[str, int]] = []

    def enter(self, session: str) -> None:
        if self.inside is not None:
            self.overlaps.append((self.inside, session))
        self.inside = session

    def leave(self, session: str, message: ClientMsg) -> None:
        self.inside = None
        self.handled.setdefault(session, []).append(message.n)


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(rate_limit=None)  # bursts of hundreds at once


@pytest.fixture
async def turn_rooms(config: RoomsConfig) -> AsyncGenerator[Rooms[TurnRoom]]:
    async with trio_rooms.open_rooms(TurnRoom, config=config) as rooms:
        yield rooms


@pytest.fixture
async def turn_port(
    turn_rooms: Rooms[TurnRoom], nursery: trio.Nursery, transport: Transport
) -> int:
    return await start_server(nursery, transport, turn_rooms)


# ---------------------------------------------------------------------------- helpers


def _frame(kind: str, n: int, text: str = "") -> bytes:
    body: dict[str, object] = {"type": kind, "n": n}
    if text:
        body["text"] = text
    return client_frame(TEXT, orjson.dumps(body))


async def _joined(client: RawClient) -> str:
    message = orjson.loads(await client.receive_text())
    assert message["type"] == "joined", message
    session_id: str = message["id"]
    return session_id


async def _fanned(client: RawClient) -> tuple[str, int]:
    message = orjson.loads(await client.receive_text())
    assert message["type"] == "fanned", message
    return message["sender"], message["n"]


class _ReaderSteps(trio.abc.Instrument):
    """Counts the sessions' reader tasks spawned, and their steps, while installed."""

    def __init__(self) -> None:
        self.spawned = 0
        self.steps = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("._read_loop"):
            self.spawned += 1

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("._read_loop"):
            self.steps += 1


# ------------------------------------------------------------------------------ tests


async def test_a_sender_that_fans_out_reads_its_next_frame_without_a_hop(
    turn_port: int, turn_rooms: Rooms[TurnRoom]
) -> None:
    """Broadcast after broadcast, the sender's handler reads its socket itself: no reader
    task is started, and none takes a step (before, the first fan-out lent it the
    reading, and each next frame went reader, then handler)."""
    steps = _ReaderSteps()
    with trio.fail_after(20):
        async with (
            open_raw(turn_port, "/rooms/r/websocket") as sender,
            open_raw(turn_port, "/rooms/r/websocket") as other,
        ):
            me = await _joined(sender)
            await _joined(other)
            await trio.testing.wait_all_tasks_blocked()
            trio.lowlevel.add_instrument(steps)
            try:
                for n in range(20):
                    await sender.send(_frame("fan", n))
                    for client in (sender, other):
                        assert await _fanned(client) == (me, n)
                await trio.testing.wait_all_tasks_blocked()
            finally:
                trio.lowlevel.remove_instrument(steps)
    assert (steps.spawned, steps.steps) == (0, 0)
    room = await turn_rooms.get("r")
    assert room.handled[me] == list(range(20))


async def test_a_hook_that_waits_lends_the_reading_and_the_frames_after_it_keep_order(
    turn_port: int, turn_rooms: Rooms[TurnRoom]
) -> None:
    """Fan-outs around a hook that waits, one at a time: the reader reads while it waits,
    gives the reading back, and every frame arrives once and in order."""
    steps = _ReaderSteps()
    kinds = ["fan", "fan", "wait", "fan", "mine", "fan", "wait", "wait", "fan", "fan"]
    with trio.fail_after(20):
        async with (
            open_raw(turn_port, "/rooms/r/websocket") as sender,
            open_raw(turn_port, "/rooms/r/websocket") as other,
        ):
            me = await _joined(sender)
            await _joined(other)
            trio.lowlevel.add_instrument(steps)
            try:
                for n, kind in enumerate(kinds):
                    await sender.send(_frame(kind, n))
                    assert await _fanned(sender) == (me, n)
                    if kind != "mine":
                        assert await _fanned(other) == (me, n)
            finally:
                trio.lowlevel.remove_instrument(steps)
    assert steps.spawned <= 1  # lent when a hook first waited, then woken as needed
    room = await turn_rooms.get("r")
    assert room.handled[me] == list(range(len(kinds)))
    assert room.overlaps == []


SENDERS = 3
BURST = 300


def _kind(n: int) -> str:
    """A mix where fan-outs follow waits, failures and replies, and each other."""
    return ("fan", "fan", "wait", "fan", "fail", "fan", "mine", "fan", "fan", "wait")[n % 10]


async def test_bursts_from_several_senders_are_handled_once_in_order_holding_the_gate(
    turn_port: int, turn_rooms: Rooms[TurnRoom]
) -> None:
    """Each of three senders writes 300 mixed frames at once (fan-outs, waits, failures,
    replies): every client gets each sender's broadcasts once and in order, each sender
    its replies too, no two hooks ever ran at once, and each failure was reported."""
    with trio.fail_after(60):
        async with (
            open_raw(turn_port, "/rooms/r/websocket") as a,
            open_raw(turn_port, "/rooms/r/websocket") as b,
            open_raw(turn_port, "/rooms/r/websocket") as c,
            open_raw(turn_port, "/rooms/r/websocket") as listener,
        ):
            senders = (a, b, c)
            ids = [await _joined(client) for client in senders]
            await _joined(listener)
            expected_by_sender = {
                sender: [n for n in range(BURST) if _kind(n) != "mine"] for sender in ids
            }
            got: dict[int, dict[str, list[int]]] = {}

            async def collect(index: int, client: RawClient, own: str | None) -> None:
                per_sender: dict[str, list[int]] = {sender: [] for sender in ids}
                got[index] = per_sender
                total = sum(len(ns) for ns in expected_by_sender.values())
                if own is not None:
                    total += BURST // 10  # its own replies ("mine")
                for _ in range(total):
                    sender, n = await _fanned(client)
                    per_sender[sender].append(n)

            async with trio.open_nursery() as nursery:
                for index, client in enumerate((*senders, listener)):
                    own = ids[index] if index < SENDERS else None
                    nursery.start_soon(collect, index, client, own)
                for client in senders:
                    burst = b"".join(_frame(_kind(n), n) for n in range(BURST))
                    nursery.start_soon(client.send, burst)
    for index in range(SENDERS + 1):
        for sender in ids:
            expected = expected_by_sender[sender]
            if index < SENDERS and ids[index] == sender:
                expected = list(range(BURST))  # its replies, in their place
            assert got[index][sender] == expected, (index, sender)
    room = await turn_rooms.get("r")
    assert room.overlaps == []
    for sender in ids:
        assert room.handled[sender] == list(range(BURST))
    assert sorted(room.errors) == sorted(
        f"fail {n}" for _ in ids for n in range(BURST) if _kind(n) == "fail"
    )


HEALTHY = 3
PAYLOAD = "x" * 16_000  # big frames fill the slow client's socket buffers quickly
MAX_MESSAGES = 20_000  # a bound: it is closed after slow_consumer_timeout over its queue bound


@pytest.mark.embedded_only("a raw client with a tiny receive buffer")
@pytest.mark.parametrize(
    "config", [RoomsConfig(rate_limit=None, slow_consumer_timeout=0.5, close_timeout=0.5)]
)
async def test_a_client_that_reads_nothing_delays_no_one_while_a_sender_fans_out(
    turn_port: int, turn_rooms: Rooms[TurnRoom]
) -> None:
    """A sender fans out big frames one after the other: the healthy clients get each at
    once and in order while a client that reads nothing fills up and is closed (1008)."""
    with trio.fail_after(60):
        async with (
            open_raw(turn_port, "/rooms/r/websocket", rcvbuf=4096) as slow,
            open_raw(turn_port, "/rooms/r/websocket") as sender,
        ):
            slow_id = await _joined(slow)  # from here on it reads nothing
            me = await _joined(sender)
            room = await turn_rooms.get("r")
            async with trio.open_nursery() as nursery:
                healthy: list[RawClient] = [
                    await nursery.start(_join_raw, turn_port) for _ in range(HEALTHY)
                ]
                sent = 0
                while (slow_id, 1008) not in room.closed:
                    assert sent < MAX_MESSAGES, "the slow client was never closed"
                    await sender.send(_frame("fan", sent, PAYLOAD))
                    for client in (sender, *healthy):
                        assert await _fanned(client) == (me, sent)
                    sent += 1
                assert room.closed == [(slow_id, 1008)]  # and no one else
                nursery.cancel_scope.cancel()
    assert sent > 10  # it took a while to fill up: the others were served meanwhile


async def _join_raw(port: int, *, task_status: trio.TaskStatus[RawClient]) -> None:
    async with open_raw(port, "/rooms/r/websocket") as client:
        await _joined(client)
        task_status.started(client)
        await trio.sleep_forever()
