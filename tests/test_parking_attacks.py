"""Parking under attack: split frames, resets, bursts and races on parked sessions.

``park_after`` is short: each silent, quiet session parks within a few keepalive
sweeps, and the tests wait on ``statistics().parks`` (or a reply) to know where it is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Rooms, RoomsConfig, Session
from trio_rooms._core.outbound import OutboundQueue
from trio_rooms.transports import _parking as parking_module
from trio_rooms.transports._parking import Sleeper
from trio_rooms.transports._stream_connection import StreamConnection

from .abuse.measure import open_fds, task_count
from .chat_app import ChatRoom
from .parked import wait_parked
from .replay_app import NoteRoom
from .sockets import (
    CLOSE,
    PING,
    PONG,
    TEXT,
    RawClient,
    client_frame,
    close_payload,
    mask,
    open_raw,
)

PARK_AFTER = 0.05
KEY = b"\x37\xfa\x21\x3d"


@pytest.fixture
def config() -> RoomsConfig:
    return RoomsConfig(park_after=PARK_AFTER)


@pytest.fixture
async def server(rooms: Rooms[ChatRoom], nursery: trio.Nursery) -> int:
    port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    return port


@asynccontextmanager
async def _joined(server: int, name: str) -> AsyncGenerator[RawClient]:
    """A raw client of the lobby, past its own ``userJoined``."""
    async with open_raw(server, f"/rooms/lobby/websocket?name={name}") as client:
        assert json.loads(await client.receive_text())["type"] == "userJoined"
        yield client


def _whisper(text: str) -> bytes:
    return client_frame(TEXT, json.dumps({"type": "whisper", "text": text}).encode())


async def _next_chat(client: RawClient) -> str:
    """The text of the next chat message (skipping pings and presence)."""
    while True:
        message = json.loads(await client.receive_text())
        if message["type"] == "chat":
            text: str = message["text"]
            return text


async def _next_control(client: RawClient) -> tuple[int, bytes]:
    """The opcode and payload of the next frame that is not text (presence is skipped)."""
    while True:
        frame = await client.receive_frame()
        assert frame is not None, "the connection ended"
        if frame.opcode != TEXT:
            return frame.opcode, frame.payload


async def _sweep_passed(rooms: Rooms[ChatRoom], witness: RawClient) -> None:
    """Wake ``witness`` and wait until it parks again.

    A session silent since before the witness's message, and waiting for its socket,
    had a keepalive sweep that could park it by then: the witness parked in it.
    """
    parks = rooms.statistics().parks
    await witness.send(_whisper("witness"))
    assert await _next_chat(witness) == "witness"
    await rooms.wait_statistics(lambda stats: stats.parks > parks)


# ------------------------------------------------------------------ frames across a park


async def test_a_frame_split_at_every_byte_boundary_across_parks_is_handled_whole(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A parked session's frame cut at any byte, the rest sent after a sweep, is one message."""
    frame = _whisper("split")
    async with _joined(server, "ann") as ann, _joined(server, "wit") as witness:
        parks = await wait_parked(rooms, 2, 2)
        for cut in range(1, len(frame)):
            await ann.send(frame[:cut])  # the head wakes it (the 1-byte one too)
            await _sweep_passed(rooms, witness)  # it could have parked again with it
            await ann.send(frame[cut:])
            assert await _next_chat(ann) == "split", cut
            parks = await wait_parked(rooms, 2, parks + 2)


async def test_a_frame_sent_a_byte_at_a_time_to_a_parked_session_is_one_message(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """Every byte of a frame in its own segment, each after a sweep: one message arrives."""
    frame = _whisper("bytes")
    async with _joined(server, "ann") as ann, _joined(server, "wit") as witness:
        await wait_parked(rooms, 2, 2)
        for byte in frame:
            await ann.send(bytes([byte]))
            await _sweep_passed(rooms, witness)
        assert await _next_chat(ann) == "bytes"


async def test_a_fragmented_message_across_parks_is_one_message(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A message's fragments, each sent after a sweep, with a ping between: one message."""
    text = json.dumps({"type": "whisper", "text": "fragments"}).encode()
    frames = [
        client_frame(TEXT, text[:5], fin=False),
        client_frame(PING, b"between"),
        client_frame(0x0, text[5:12], fin=False),
        client_frame(0x0, text[12:]),
    ]
    async with _joined(server, "ann") as ann, _joined(server, "wit") as witness:
        await wait_parked(rooms, 2, 2)
        for frame in frames:
            await ann.send(frame)
            await _sweep_passed(rooms, witness)
        assert await _next_control(ann) == (PONG, b"between")
        assert await _next_chat(ann) == "fragments"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(0x3, b"reserved opcode"), 1002),
        (client_frame(0xB, b"reserved control opcode"), 1002),
        (client_frame(TEXT, b"x", rsv=4), 1002),
        (client_frame(TEXT, b"unmasked", key=None), 1002),
        (client_frame(0x0, b"continuation of nothing"), 1002),
        (client_frame(PING, b"x", fin=False), 1002),
        (client_frame(TEXT, b"\xff\xfe"), 1007),
        (client_frame(TEXT, b"x" * 64, length=2**40), 1009),
        (client_frame(CLOSE, b"\x03"), 1002),
        # As long as a lone pong of 126 bytes, but a 16-bit length: too long for control.
        (bytes([0x8A, 0x80 | 126, 0, 124]) + KEY + mask(b"p" * 124, KEY), 1002),
    ],
    ids=[
        "opcode 3",
        "opcode 11",
        "a reserved bit",
        "unmasked",
        "lone continuation",
        "fragmented ping",
        "bad UTF-8",
        "oversize length",
        "one-byte close",
        "pong with a 16-bit length",
    ],
)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "header then rest"])
# The close after a 1009 is skipped as the huge message's payload: the drain times out.
@pytest.mark.parametrize("config", [RoomsConfig(park_after=PARK_AFTER, close_timeout=0.5)])
async def test_a_bad_frame_to_a_parked_session_closes_it_as_a_live_one(
    rooms: Rooms[ChatRoom], server: int, frame: bytes, code: int, split: bool
) -> None:
    """A broken frame arriving while parked is answered with the live close code."""
    async with _joined(server, "ann") as ann:
        await wait_parked(rooms, 1, 1)
        if split:
            await ann.send(frame[:1])
            await trio.testing.wait_all_tasks_blocked()
            await ann.send(frame[1:])
        else:
            await ann.send(frame)
        assert await ann.close_code() == code
        await ann.send(client_frame(CLOSE, close_payload(1000)))
        room = await rooms.get("lobby")
        assert await room.wait_closed(1) == [("ann", code)]
    stats = await rooms.wait_statistics(lambda stats: stats.sessions == 0)
    assert stats.parked_sessions == 0


# --------------------------------------------------------------- the close handshake, pings


async def test_a_close_from_the_client_while_parked_is_answered_with_1000(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A parked session's client closes: it gets 1000 back, and on_close runs once."""
    async with _joined(server, "ann") as ann:
        await wait_parked(rooms, 1, 1)
        await ann.send(client_frame(CLOSE, close_payload(1000, "bye")))
        assert await ann.close_code() == 1000
        assert await ann.receive_frame() is None  # then the server closes the TCP stream
        room = await rooms.get("lobby")
        assert await room.wait_closed(1) == [("ann", 1000)]
    stats = await rooms.wait_statistics(lambda stats: stats.sessions == 0)
    assert (stats.parked_sessions, stats.connections) == (0, 0)
    assert room.closed == [("ann", 1000)]


async def test_a_ping_to_a_parked_session_is_answered_in_order(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """Pings to a parked session get their pongs, in order, and it parks again."""
    async with _joined(server, "ann") as ann:
        parks = await wait_parked(rooms, 1, 1)
        for i in range(5):
            payload = f"ping {i}".encode()
            await ann.send(client_frame(PING, payload))
            assert await _next_control(ann) == (PONG, payload)
            parks = await wait_parked(rooms, 1, parks + 1)


async def test_a_lone_pong_split_in_two_while_parked_loses_nothing(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A pong cut in two wakes a parked session, and the message after it is handled."""
    pong = client_frame(PONG, b"")
    async with _joined(server, "ann") as ann:
        await wait_parked(rooms, 1, 1)
        await ann.send(pong[:3])
        await trio.testing.wait_all_tasks_blocked()
        await ann.send(pong[3:] + _whisper("after the pong"))
        assert await _next_chat(ann) == "after the pong"


async def test_a_pong_glued_to_a_message_while_parked_loses_the_message_not(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A pong and a message in one segment to a parked session: the message is handled."""
    async with _joined(server, "ann") as ann:
        await wait_parked(rooms, 1, 1)
        await ann.send(client_frame(PONG, b"") + _whisper("glued"))
        assert await _next_chat(ann) == "glued"


# ----------------------------------------------------------------------------- resets


RESET_POINTS = [
    "while parking",
    "while parked",
    "after the first byte",
    "after a message",
    "after a close frame",
]


async def _reset_at(rooms: Rooms[ChatRoom], client: RawClient, point: str, parks: int) -> None:
    """Take a parked or parking session to ``point`` and reset its client there."""
    if point == "while parking":
        # The park is counted before its tasks end and before the server watches it.
        await rooms.wait_statistics(lambda stats: stats.parks >= parks)
    else:
        await wait_parked(rooms, 2, parks)
        if point == "after the first byte":
            await client.send(_whisper("cut")[:1])
        elif point == "after a message":
            await client.send(_whisper("reply into a reset"))
        elif point == "after a close frame":
            await client.send(client_frame(CLOSE, close_payload(1000)))
    client.reset()


@pytest.mark.parametrize("point", RESET_POINTS)
async def test_a_reset_at_any_point_of_a_park_ends_the_session_once(
    rooms: Rooms[ChatRoom], server: int, point: str
) -> None:
    """An RST at any point of a park: on_close once, counters and members right, no leak."""
    async with _joined(server, "canary") as canary:
        parks = await wait_parked(rooms, 1, 1)
        await trio.testing.wait_all_tasks_blocked()
        tasks, fds = task_count(), open_fds()
        room = await rooms.get("lobby")
        for attempt in range(5):
            async with _joined(server, f"reset{attempt}") as client:
                await _reset_at(rooms, client, point, parks + 1)
                closed = await room.wait_closed(attempt + 1)
            code = 1000 if point == "after a close frame" else 1006
            assert closed[attempt] in {(f"reset{attempt}", code), (f"reset{attempt}", 1006)}
            stats = await rooms.wait_statistics(lambda stats: stats.sessions == 1)
            parks = stats.parks
            assert await room.members() == [s.id for s in room.sessions.values()]
            assert [s.data.name for s in room.sessions.values()] == ["canary"]
        await canary.send(_whisper("still served"))
        assert await _next_chat(canary) == "still served"
        parks = await wait_parked(rooms, 1, parks + 1)
        await trio.testing.wait_all_tasks_blocked()
        assert (task_count(), open_fds()) == (tasks, fds)
    stats = await rooms.wait_statistics(lambda stats: stats.connections == 0)
    assert (stats.sessions, stats.parked_sessions) == (0, 0)
    assert len(await room.wait_closed(6)) == 6


# ------------------------------------------------------------------ keepalive of a parked one


@pytest.mark.parametrize(
    "config", [RoomsConfig(park_after=PARK_AFTER, ping_interval=0.1, ping_timeout=0.1)]
)
async def test_a_parked_session_that_expires_leaves_nothing_behind(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A parked client that never answers the ping ends with 1006: no fd, no task left."""
    async with _joined(server, "warm-up"):
        pass  # the room stays, idle, for room_idle_timeout
    await rooms.wait_statistics(lambda stats: stats.connections == 0)
    await trio.testing.wait_all_tasks_blocked()
    tasks, fds = task_count(), open_fds()
    async with _joined(server, "mute") as mute:
        await wait_parked(rooms, 1, 1)
        assert (await _next_control(mute))[0] == PING
        assert await mute.receive_frame() is None  # dropped, without a close frame
    room = await rooms.get("lobby")
    assert (await room.wait_closed(2))[1:] == [("mute", 1006)]
    stats = await rooms.wait_statistics(lambda stats: stats.connections == 0)
    assert (stats.sessions, stats.parked_sessions) == (0, 0)
    await trio.testing.wait_all_tasks_blocked()
    assert (task_count(), open_fds()) == (tasks, fds)


# ------------------------------------------------------- input racing the sweep's park ask


class _AskAsInputWakes(trio.abc.Instrument):
    """Asks ``connection`` to park as its task steps, woken by input: the sweep's worst moment.

    The sweep asks whenever the reader is waiting (``_waiting``); in one turn of the run
    loop input may have woken the reader already, which has not run yet.
    """

    def __init__(self, connection: StreamConnection) -> None:
        self.connection = connection
        self.asked = False

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        connection = self.connection
        reading = task.name.endswith("._serve_stream")  # the session's handler reads
        if reading and not self.asked and connection._waiting:  # pyright: ignore[reportPrivateUsage] - the race
            self.asked = True
            connection._ask_to_park()  # pyright: ignore[reportPrivateUsage] - the race


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[StreamConnection]:
    """The server's connections, as they are attached to their sessions."""
    made: list[StreamConnection] = []
    attach = StreamConnection.attach

    def record(self: StreamConnection, outbound: OutboundQueue) -> None:
        made.append(self)
        attach(self, outbound)

    monkeypatch.setattr(StreamConnection, "attach", record)
    return made


async def _ask_as_input_wakes(connection: StreamConnection, client: RawClient, text: str) -> None:
    """Send a whisper to a live session and race a park ask with the wake-up it causes."""
    await trio.testing.wait_all_tasks_blocked()  # its reader waits on the socket
    instrument = _AskAsInputWakes(connection)
    # Sent synchronously: the next turn of the run loop finds it and wakes the reader.
    os.write(client.stream.socket.fileno(), _whisper(text))
    trio.lowlevel.add_instrument(instrument)
    try:
        assert await _next_chat(client) == text
    finally:
        trio.lowlevel.remove_instrument(instrument)
    assert instrument.asked


@pytest.mark.parametrize("config", [RoomsConfig(park_after=60.0)])
async def test_input_that_overtakes_a_park_ask_leaves_the_session_parkable(
    rooms: Rooms[ChatRoom], server: int, connections: list[StreamConnection]
) -> None:
    """A park asked for as input wakes the read is void: the session parks when next silent."""
    async with _joined(server, "ann") as ann:
        (connection,) = connections
        await _ask_as_input_wakes(connection, ann, "first")
        await trio.testing.wait_all_tasks_blocked()
        connection._ask_to_park()  # pyright: ignore[reportPrivateUsage] - the sweep's, later
        with trio.fail_after(5):  # (else only the keepalive would end it, 40 s later)
            await wait_parked(rooms, 1, 1)
        await ann.send(_whisper("after the park"))
        assert await _next_chat(ann) == "after the park"


@pytest.mark.parametrize("config", [RoomsConfig(park_after=60.0)])
async def test_a_connection_read_by_what_cannot_park_is_never_asked_to(
    rooms: Rooms[ChatRoom], server: int, connections: list[StreamConnection]
) -> None:
    """A connection whose reader cannot park (a relay's pump: its queue says so) is not
    asked to, so it is not woken for nothing at every keepalive sweep; a session's is."""
    async with _joined(server, "ann") as ann:
        (connection,) = connections
        await trio.testing.wait_all_tasks_blocked()
        session_queue = connection._outbound  # pyright: ignore[reportPrivateUsage] - swapped
        assert session_queue is not None
        assert session_queue.parks
        relay_queue = OutboundQueue(8, 1024)  # as `_relay_pump` attaches its own
        relay_queue.start_lazily(lambda: None)  # its writer idle, as a quiet relay's
        connection.attach(relay_queue)
        connection._ask_to_park()  # pyright: ignore[reportPrivateUsage] - the sweep's
        assert not connection._park_asked  # pyright: ignore[reportPrivateUsage] - the ask
        connection.attach(session_queue)
        connection._ask_to_park()  # pyright: ignore[reportPrivateUsage] - the sweep's
        await wait_parked(rooms, 1, 1)
        await ann.send(_whisper("parked, then woken"))
        assert await _next_chat(ann) == "parked, then woken"


@pytest.mark.parametrize(
    "config", [RoomsConfig(park_after=60.0, ping_interval=0.05, ping_timeout=0.05)]
)
async def test_a_session_that_expires_after_a_void_park_ask_ends_alone(
    rooms: Rooms[ChatRoom], server: int, connections: list[StreamConnection]
) -> None:
    """Expired after a park ask its input overtook, a session ends with 1006; the server serves."""
    async with _joined(server, "ann") as ann:
        (connection,) = connections
        await _ask_as_input_wakes(connection, ann, "first")
        assert (await _next_control(ann))[0] == PING  # not answered: it expires
        room = await rooms.get("lobby")
        assert await room.wait_closed(1) == [("ann", 1006)]
    async with _joined(server, "bob") as bob:
        await bob.send(_whisper("still served"))
        assert await _next_chat(bob) == "still served"
    stats = await rooms.wait_statistics(lambda stats: stats.connections == 0)
    assert (stats.sessions, stats.parked_sessions) == (0, 0)


_REAL_EPOLL = select.epoll


class _FullEpoll:
    """An epoll set that takes no more descriptors, as at ``fs.epoll.max_user_watches``."""

    def __init__(self) -> None:
        self._epoll = _REAL_EPOLL()

    def fileno(self) -> int:
        return self._epoll.fileno()

    def register(self, fd: int, eventmask: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def unregister(self, fd: int) -> None:
        self._epoll.unregister(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        return self._epoll.poll(timeout)

    def close(self) -> None:
        self._epoll.close()


async def test_a_session_the_epoll_set_cannot_take_runs_on_live(
    rooms: Rooms[ChatRoom], nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A park the server's epoll set refuses leaves the session live and served, and is
    not counted as a park."""
    refused_thrice = trio.Event()
    refusals: list[int] = []

    class CountingFullEpoll(_FullEpoll):
        def register(self, fd: int, eventmask: int) -> None:
            refusals.append(fd)
            if len(refusals) == 3:
                refused_thrice.set()
            super().register(fd, eventmask)

    monkeypatch.setattr(parking_module.select, "epoll", CountingFullEpoll)
    port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    async with _joined(port, "ann") as ann:
        # Parked, a silent session would park once; refused, it runs on and is asked again.
        await refused_thrice.wait()
        assert (rooms.statistics().parks, rooms.statistics().parked_sessions) == (0, 0)
        await ann.send(_whisper("still live"))
        assert await _next_chat(ann) == "still live"
    stats = await rooms.wait_statistics(lambda stats: stats.connections == 0)
    assert (stats.sessions, stats.parked_sessions) == (0, 0)


async def test_a_park_that_fails_leaves_the_session_live_and_the_server_serving(
    rooms: Rooms[ChatRoom], nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error while a session parks is that connection's: it runs on, and so does the
    server (it once ended the listener)."""
    park = parking_module.Parking.park
    failed: list[int] = []

    def failing_first(self: parking_module.Parking, fd: int, sleeper: Sleeper) -> bool:
        if not failed:
            failed.append(fd)
            raise RuntimeError("a bug in parking")
        return park(self, fd, sleeper)

    monkeypatch.setattr(parking_module.Parking, "park", failing_first)
    port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
    async with _joined(port, "ann") as ann:
        await rooms.wait_statistics(lambda stats: stats.parks >= 1)
        await ann.send(_whisper("still here"))
        assert await _next_chat(ann) == "still here"
        async with _joined(port, "bob") as bob:  # the listener still accepts
            await bob.send(_whisper("me too"))
            assert await _next_chat(bob) == "me too"
    assert failed


class _Sleeper:
    def __init__(self) -> None:
        self.resumed = trio.Event()

    def readable(self) -> bool:
        return True

    async def resume(self) -> None:
        self.resumed.set()


async def test_a_parked_socket_closed_before_its_wake_is_still_woken(
    nursery: trio.Nursery,
) -> None:
    """Waking a connection whose socket was closed while parked starts its task (the
    kernel has dropped the descriptor from the set; unregistering it fails)."""
    parking = parking_module.Parking()
    nursery.start_soon(parking.run, nursery)
    await trio.testing.wait_all_tasks_blocked()
    ours, theirs = trio.socket.socketpair()
    sleeper = _Sleeper()
    fd = ours.fileno()
    assert parking.park(fd, sleeper)
    ours.close()
    parking.wake(fd, sleeper)
    with trio.fail_after(5):
        await sleeper.resumed.wait()
    assert len(parking) == 0
    theirs.close()


async def test_a_stale_wake_does_not_start_the_next_sleeper_on_the_same_descriptor(
    nursery: trio.Nursery,
) -> None:
    """A wake for a connection that parked on a descriptor number since given to another
    parked connection leaves that other one parked."""
    parking = parking_module.Parking()
    nursery.start_soon(parking.run, nursery)
    await trio.testing.wait_all_tasks_blocked()
    first, peer = trio.socket.socketpair()
    gone, late = _Sleeper(), _Sleeper()
    fd = first.fileno()
    assert parking.park(fd, gone)
    parking.wake(fd, gone)
    await gone.resumed.wait()
    assert parking.park(fd, late)  # the same number, another connection's now
    parking.wake(fd, gone)
    await trio.testing.wait_all_tasks_blocked()
    assert not late.resumed.is_set()
    assert len(parking) == 1
    parking.wake(fd, late)
    await late.resumed.wait()
    first.close()
    peer.close()


# --------------------------------------------------------------- bursts to a parked session


def _shout(text: str) -> bytes:
    return client_frame(TEXT, json.dumps({"type": "shout", "text": text}).encode())


@pytest.mark.parametrize("config", [RoomsConfig(park_after=PARK_AFTER, rate_limit=None)])
async def test_partial_writes_to_a_parked_peer_that_does_not_read_keep_their_order(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """Broadcasts a parked peer cannot take at once reach it whole, in order, once it reads."""
    texts = [f"{i:03} " + "y" * 3000 for i in range(120)]  # far more than its buffers
    async with (
        open_raw(server, "/rooms/lobby/websocket?name=ann", rcvbuf=4096) as ann,
        _joined(server, "bob") as bob,
    ):
        parks = await wait_parked(rooms, 2, 2)
        for text in texts:
            await bob.send(_shout(text))
        # Bob's last shout was handled once bob is parked again; ann's writer may still
        # be at it (or ann parked again): either way nothing is lost or reordered.
        await rooms.wait_statistics(lambda stats: stats.parks > parks and stats.parked_sessions > 0)
        got = [await _next_chat(ann) for _ in texts]
        assert got == texts
        await wait_parked(rooms, 2)  # and it parks again, drained
        assert rooms.statistics().slow_consumers == 0


@pytest.mark.parametrize(
    "config",
    [
        RoomsConfig(
            park_after=PARK_AFTER,
            outbound_max_messages=8,
            slow_consumer_timeout=0.1,
            rate_limit=None,
        )
    ],
)
async def test_a_burst_over_the_message_bound_closes_a_parked_session_as_a_live_one(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A parked peer that does not read, sent more than its bound, gets a prefix and 1008."""
    room = await rooms.get("lobby")
    async with (
        open_raw(server, "/rooms/lobby/websocket?name=ann", rcvbuf=4096) as ann,
        _joined(server, "bob") as bob,
    ):
        await wait_parked(rooms, 2, 2)
        sent: list[str] = []
        while rooms.statistics().slow_consumers == 0:
            text = f"{len(sent):04} " + "z" * 2000
            sent.append(text)
            await bob.send(_shout(text))
            await trio.testing.wait_all_tasks_blocked()
        got: list[str] = []  # read from here on: its close frame can be written
        while (frame := await ann.receive_frame()) is not None and frame.opcode == TEXT:
            message = json.loads(frame.payload)
            if message["type"] == "chat":
                got.append(message["text"])
        assert frame is not None
        assert frame.close_code == 1008
        await ann.send(client_frame(CLOSE, close_payload(1000)))  # the answer it waits for
        assert got == sent[: len(got)]  # what it got is what was sent, in order, no gap
        assert await room.wait_closed(1) == [("ann", 1008)]
        assert rooms.statistics().slow_consumers == 1


# -------------------------------------------------------------- races with a wake-up


async def test_a_close_from_the_room_racing_a_wake_up_closes_once(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """Session.close() in the turn its client's message wakes it: one close, on_close once."""
    room = await rooms.get("lobby")
    for attempt in range(10):
        async with _joined(server, f"ann{attempt}") as ann:
            await wait_parked(rooms, 1)
            (session,) = room.sessions.values()
            os.write(ann.stream.socket.fileno(), _whisper("racing"))
            if attempt % 2:
                await trio.lowlevel.checkpoint()  # the wake-up is on its way
            await session.close(4003, "kicked")
            assert await ann.close_code() == 4003
            await ann.send(client_frame(CLOSE, close_payload(4003)))
            assert (await room.wait_closed(attempt + 1))[-1] == (f"ann{attempt}", 4003)
            stats = await rooms.wait_statistics(lambda stats: stats.sessions == 0)
            assert stats.parked_sessions == 0
    assert len(room.closed) == 10


@pytest.mark.parametrize("config", [RoomsConfig(park_after=PARK_AFTER, resume_window=60.0)])
async def test_a_takeover_of_a_parked_session_racing_its_wake_up_hands_it_over(
    rooms: Rooms[ChatRoom], server: int
) -> None:
    """A resume of a parked session as its old client writes: 4001 there, the session here."""
    for attempt in range(6):
        async with open_raw(server, "/rooms/lobby/websocket?resume=&name=ann") as old:
            session = json.loads(await old.receive_text())["$session"]
            assert json.loads(await old.receive_text())["type"] == "userJoined"
            await wait_parked(rooms, 1)
            if attempt % 2:
                os.write(old.stream.socket.fileno(), _whisper("racing"))
            async with open_raw(server, f"/rooms/lobby/websocket?resume={session['token']}") as new:
                resumed = json.loads(await new.receive_text())["$session"]
                assert (resumed["id"], resumed["resumed"]) == (session["id"], True)
                assert await old.close_code() == 4001
                stats = await rooms.wait_statistics(lambda stats: stats.sessions == 1)
                room = await rooms.get("lobby")
                assert list(room.sessions) == [session["id"]]
                await wait_parked(rooms, 1)  # the new connection parks in its turn
                await new.send(_whisper("after the takeover"))
                assert await _next_chat(new) == "after the takeover"
        stats = await rooms.wait_statistics(lambda stats: stats.connections == 0)
        assert (stats.sessions, stats.parked_sessions) == (0, 0)


@pytest.mark.parametrize("when", ["parked", "waking"])
async def test_rooms_shutdown_with_parked_sessions_ends_them_and_returns(
    nursery: trio.Nursery, when: str
) -> None:
    """Closing Rooms while sessions are parked (or waking) ends each once and returns."""
    config = RoomsConfig(park_after=PARK_AFTER, shutdown_timeout=0.5, close_timeout=0.5)
    with trio.fail_after(10):
        async with contextlib.AsyncExitStack() as clients:
            async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
                port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
                ann = await clients.enter_async_context(_joined(port, "ann"))
                bob = await clients.enter_async_context(_joined(port, "bob"))
                await wait_parked(rooms, 2, 2)
                room = await rooms.get("lobby")
                if when == "waking":
                    os.write(ann.stream.socket.fileno(), _whisper("racing"))
                    os.write(bob.stream.socket.fileno(), _whisper("racing"))
            # Rooms have shut down (the server still runs).
            assert sorted(name for name, _ in room.closed) == ["ann", "bob"]
            for client in (ann, bob):
                frames = await client.receive_until_eof()
                closes = [frame.close_code for frame in frames if frame.opcode == CLOSE]
                assert closes in ([], [1001]), closes
            stats = rooms.statistics()
            assert (stats.sessions, stats.parked_sessions) == (0, 0)


@pytest.mark.parametrize("when", ["parked", "waking"])
async def test_server_shutdown_racing_wake_ups_closes_each_session_once(
    rooms: Rooms[ChatRoom], when: str
) -> None:
    """Cancelling the server as parked sessions wake: each closes with 1001, once."""
    room = await rooms.get("lobby")
    async with trio.open_nursery() as server_nursery:
        port: int = await server_nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        async with _joined(port, "ann") as ann, _joined(port, "bob") as bob:
            await wait_parked(rooms, 2, 2)
            if when == "waking":
                os.write(ann.stream.socket.fileno(), _whisper("racing"))
                await trio.lowlevel.checkpoint()
                os.write(bob.stream.socket.fileno(), _whisper("racing"))
            server_nursery.cancel_scope.cancel()
            assert await ann.close_code() == 1001
            assert await bob.close_code() == 1001
    assert sorted(await room.wait_closed(2)) == [("ann", 1001), ("bob", 1001)]
    stats = await rooms.wait_statistics(lambda stats: stats.connections == 0)
    assert (stats.sessions, stats.parked_sessions) == (0, 0)


# ------------------------------------------------------------- many sessions at once


@attrs.frozen
class Poke(Message):
    text: str


@attrs.frozen
class Note(Message):
    text: str


@attrs.define
class QuietData:
    pokes: int = 0


class QuietSession(Session[QuietData, Note, Poke, "QuietRoom"]):
    """Announces nothing: each frame its client gets is a reply or a broadcast."""

    async def create_data(self, request: ConnectRequest) -> QuietData:
        return QuietData()

    async def on_message(self, message: Poke) -> None:
        self.data.pokes += 1
        self.send(Note(text=message.text))


class QuietRoom(Room[QuietSession]):
    pass


def _poke(text: str) -> bytes:
    return client_frame(TEXT, json.dumps({"type": "poke", "text": text}).encode())


async def _notes(client: RawClient, count: int) -> list[str]:
    """The texts of the next ``count`` notes (pings skipped)."""
    return [json.loads(await client.receive_text())["text"] for _ in range(count)]


async def _read_round(client: RawClient, burst: int, poke: str | None, heard: list[str]) -> None:
    """Read a round's ``burst`` broadcasts into ``heard``, and the reply to ``poke`` if any."""
    notes = await _notes(client, burst + (poke is not None))
    if poke is not None:
        notes.remove(poke)  # its place among the broadcasts is the race's
    heard.extend(notes)


async def test_500_sessions_parking_and_waking_under_broadcast_see_each_broadcast_once(
    nursery: trio.Nursery,
) -> None:
    """500 sessions woken by their clients between broadcasts: each gets every one, in order."""
    sessions, rounds, burst = 500, 4, 3
    config = RoomsConfig(park_after=PARK_AFTER, max_connections_per_address=sessions + 10)
    async with trio_rooms.open_rooms(QuietRoom, config=config) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        clients: list[RawClient] = []
        async with contextlib.AsyncExitStack() as stack:
            limit = trio.Semaphore(50)

            async def join() -> None:
                async with limit:
                    clients.append(
                        await stack.enter_async_context(open_raw(port, "/rooms/q/websocket"))
                    )

            with trio.fail_after(60):
                async with trio.open_nursery() as joining:
                    for _ in range(sessions):
                        joining.start_soon(join)
                room = await rooms.get("q")
                heard: list[list[str]] = [[] for _ in clients]
                for round_ in range(rounds):
                    stats = await rooms.wait_statistics(
                        lambda stats: stats.parked_sessions == sessions
                    )
                    poking = [i for i in range(sessions) if i % 3 == round_ % 3]
                    for k in range(burst):
                        room.broadcast(Note(text=f"b{round_}.{k}"))
                        if k == 0:  # their wake-ups race the next broadcasts
                            for i in poking:
                                os.write(clients[i].stream.socket.fileno(), _poke(f"p{round_}"))
                        await trio.lowlevel.checkpoint()

                    async with trio.open_nursery() as reading:
                        for i, client in enumerate(clients):
                            poke = f"p{round_}" if i in poking else None
                            reading.start_soon(_read_round, client, burst, poke, heard[i])
                    parks = stats.parks + len(poking)
                    await rooms.wait_statistics(lambda stats, parks=parks: stats.parks >= parks)
                expected = [f"b{r}.{k}" for r in range(rounds) for k in range(burst)]
                assert all(notes == expected for notes in heard)
                assert sum(s.data.pokes for s in room.sessions.values()) == sum(
                    len([i for i in range(sessions) if i % 3 == r % 3]) for r in range(rounds)
                )
        stats = await rooms.wait_statistics(lambda stats: stats.connections == 0)
        assert (stats.sessions, stats.parked_sessions) == (0, 0)


# ------------------------------------------------------------------------ resume tokens


@pytest.mark.parametrize("read", [5, 2, 0])
async def test_a_resumable_session_reset_while_parked_replays_exactly_what_was_missed(
    nursery: trio.Nursery, read: int
) -> None:
    """Notes sent to a parked session, then a reset: the resume replays from its count on."""
    config = RoomsConfig(park_after=PARK_AFTER)
    async with trio_rooms.open_rooms(NoteRoom, config=config) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        room: NoteRoom = await rooms.get("r")
        async with open_raw(port, "/rooms/r/websocket?resume=&seen=0") as client:
            token = json.loads(await client.receive_text())["$session"]["token"]
            await rooms.wait_statistics(lambda stats: stats.parked_sessions == 1)
            for _ in range(5):
                room.note()  # written while it is parked
            assert [json.loads(await client.receive_text())["n"] for _ in range(read)] == list(
                range(read)
            )
            client.reset()
        await room.wait_closes(1)
        for _ in range(7):
            room.note()
        async with open_raw(port, f"/rooms/r/websocket?resume={token}&seen={read}") as client:
            session = json.loads(await client.receive_text())["$session"]
            assert (session["resumed"], session["replayed"]) == (True, 12 - read)
            replayed = [json.loads(await client.receive_text())["n"] for _ in range(12 - read)]
            assert replayed == list(range(read, 12))
            await rooms.wait_statistics(lambda stats: stats.parked_sessions == 1)
            room.note("parked again")
            assert json.loads(await client.receive_text()) == {
                "type": "note",
                "n": 12,
                "text": "parked again",
            }
        assert room.replayed == [12 - read]
