"""Replay held to a model over random drops, lost frames, resumes, broadcasts and restarts.

Two resumable clients of one room with a short log, on a real SQLite file and real
sockets. The model keeps the room's log as the server must (a mark, then every note
and every snapshot sent), and each client's stream of frames; every resume must
either replay exactly the frames after what the client says it saw, in order, or say
`$resync` and send the snapshot, and a resync is allowed only when the log no longer
reaches back that far.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import attrs
import orjson
import trio
import trio_websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trio_rooms
from trio_rooms import ReplayLimits, RoomsConfig, SqliteStorage

from .replay_app import NoteRoom
from .sockets import open_client

#: The log's bound by count: small, so that random runs go past it both ways.
LOG = 6
CLIENTS = 2


class MachineRoom(NoteRoom):
    replay = ReplayLimits(max_messages=LOG)


@attrs.frozen
class Broadcast:
    notes: int


@attrs.frozen
class Read:
    client: int
    frames: int


@attrs.frozen
class Drop:
    client: int


@attrs.frozen
class Resume:
    client: int
    #: Frames the client read but lost (it says it saw that many fewer).
    lost: int


@attrs.frozen
class Restart:
    pass


Step = Broadcast | Read | Drop | Resume | Restart

_client = st.integers(0, CLIENTS - 1)
_steps = st.lists(
    st.one_of(
        # Resumes and broadcasts come most often, so that runs go past the log's bound.
        st.builds(Resume, _client, st.integers(0, 2)),
        st.builds(Resume, _client, st.just(0)),
        st.builds(Broadcast, st.integers(1, 5)),
        st.builds(Broadcast, st.integers(1, 5)),
        st.builds(Read, _client, st.integers(1, 5)),
        st.builds(Drop, _client),
        st.builds(Drop, _client),
        st.just(Restart()),
    ),
    min_size=1,
    max_size=20,
)


@attrs.define
class _Client:
    """What the model knows of one client, and its socket while connected."""

    #: The log index of every frame the server sent this client, in order.
    stream: list[int] = attrs.Factory(list[int])
    #: Frames of ``stream`` it has read and kept: what it says it saw on resume.
    seen: int = 0
    #: The log index of the newest entry when its session last left the room.
    left_at: int = 0
    token: str = ""
    ws: trio_websocket.WebSocketConnection | None = None
    #: Set to close the connection; set back by its task once it has closed.
    hang_up: trio.Event | None = None
    hung_up: trio.Event | None = None


async def _frame(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        message = await ws.get_message()
    content: dict[str, Any] = orjson.loads(message)
    return content


async def _hold(
    port: int,
    resource: str,
    hang_up: trio.Event,
    hung_up: trio.Event,
    task_status: trio.TaskStatus[trio_websocket.WebSocketConnection] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Hold a connection to ``resource`` open until ``hang_up``; then close it cleanly."""
    try:
        async with open_client(port, resource) as (ws, _):
            task_status.started(ws)
            await hang_up.wait()
    finally:
        hung_up.set()


class _Machine:
    def __init__(self, db: Path) -> None:
        self._db = db
        self._notes = 0
        #: The room's log: the frame each entry holds (None: the mark a log starts with).
        self._log: list[dict[str, Any] | None] = []
        self._clients: list[_Client | None] = [None] * CLIENTS
        self._nursery: trio.Nursery | None = None
        self.resyncs = 0
        self.replays = 0

    async def run(self, steps: list[Step]) -> None:
        while steps:
            steps = await self._serve(steps)

    async def _serve(self, steps: list[Step]) -> list[Step]:
        """Run steps on one server until a restart; the steps left after it."""
        storage = SqliteStorage(self._db)
        async with (
            trio_rooms.open_rooms(MachineRoom, storage=storage, config=RoomsConfig()) as rooms,
            trio.open_nursery() as nursery,
        ):
            port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
            self._nursery = nursery
            room: MachineRoom = await rooms.get("r")
            room.notes = self._notes
            try:
                for index, step in enumerate(steps):
                    if isinstance(step, Restart):
                        await self._drop_all(room)
                        return steps[index + 1 :]
                    await self._step(step, port, room)
                await self._check_live(room)
                await self._drop_all(room)
                return []
            finally:
                self._notes = room.notes
                nursery.cancel_scope.cancel()

    async def _step(self, step: Step, port: int, room: MachineRoom) -> None:
        match step:
            case Broadcast(notes=notes):
                for _ in range(notes):
                    self._note(room)
            case Read(client=index, frames=frames):
                client = self._clients[index]
                if client is not None and client.ws is not None:
                    for _ in range(min(frames, len(client.stream) - client.seen)):
                        await self._expect_next(client)
            case Drop(client=index):
                client = self._clients[index]
                if client is not None:
                    await self._drop(client, room)
            case Resume(client=index, lost=lost):
                client = self._clients[index]
                if client is None:
                    self._clients[index] = await self._join(port)
                elif client.ws is None:
                    await self._resume(client, min(lost, client.seen), port, room)
            case Restart():
                raise AssertionError("a restart is run by _serve")

    def _note(self, room: MachineRoom, text: str = "") -> None:
        self._log.append({"type": "note", "n": room.notes, "text": text})
        for client in self._clients:
            if client is not None:
                client.stream.append(len(self._log) - 1)
        room.note(text)

    async def _expect_next(self, client: _Client) -> None:
        assert client.ws is not None
        assert await _frame(client.ws) == self._log[client.stream[client.seen]]
        client.seen += 1

    async def _join(self, port: int) -> _Client:
        if not self._log:
            self._log.append(None)  # the first resumable session starts the log
        client = _Client()
        session = await self._open(client, port, "?resume=&seen=0")
        assert (session["resumed"], session["replayed"]) == (False, 0)
        client.token = session["token"]
        return client

    async def _resume(self, client: _Client, lost: int, port: int, room: MachineRoom) -> None:
        client.seen -= lost
        missed = len(client.stream) - client.seen
        # The log keeps its newest LOG entries. A replay needs the first missed frame
        # among them, and the place the session left at among them or just before.
        oldest = len(self._log) - LOG
        replayable = client.left_at >= oldest - 1 and (
            missed == 0 or client.stream[client.seen] >= oldest
        )
        session = await self._open(client, port, f"?resume={client.token}&seen={client.seen}")
        assert session["resumed"] is True
        assert client.ws is not None
        client.token = session["token"]  # a token is spent by its resume
        if not replayable:
            assert session["replayed"] == 0
            assert "$resync" in await _frame(client.ws)
            # The session counts on from what its client saw; then comes its snapshot.
            del client.stream[client.seen :]
            self._log.append({"type": "snapshot", "notes": room.notes})
            client.stream.append(len(self._log) - 1)
            await self._expect_next(client)
            self.resyncs += 1
            return
        assert session["replayed"] == missed
        for _ in range(missed):
            await self._expect_next(client)
        self.replays += missed > 0

    async def _open(self, client: _Client, port: int, query: str) -> dict[str, Any]:
        # Each connection in a task of its own: clients close in any order, not nested.
        assert self._nursery is not None
        client.hang_up, client.hung_up = trio.Event(), trio.Event()
        ws: trio_websocket.WebSocketConnection = await self._nursery.start(
            _hold, port, f"/rooms/r/websocket{query}", client.hang_up, client.hung_up
        )
        client.ws = ws
        session: dict[str, Any] = (await _frame(ws))["$session"]
        return session

    async def _drop(self, client: _Client, room: MachineRoom) -> None:
        if client.hang_up is None or client.hung_up is None:
            return
        closes = room.closes
        client.hang_up.set()
        await client.hung_up.wait()
        client.ws = client.hang_up = client.hung_up = None
        client.left_at = len(self._log) - 1
        with trio.fail_after(10):
            await room.wait_closes(closes + 1)

    async def _drop_all(self, room: MachineRoom) -> None:
        for client in self._clients:
            if client is not None:
                await self._drop(client, room)

    async def _check_live(self, room: MachineRoom) -> None:
        """After the steps, every connected client catches up and gets a live note."""
        live = [c for c in self._clients if c is not None and c.ws is not None]
        self._note(room, "live")
        for client in live:
            while client.seen < len(client.stream):
                await self._expect_next(client)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_steps)
def test_every_resume_replays_exactly_what_was_missed_or_says_resync(steps: list[Step]) -> None:
    """Any run of drops, lost frames, resumes and restarts replays or resyncs, never a gap."""
    with tempfile.TemporaryDirectory() as folder:
        trio.run(_Machine(Path(folder) / "rooms.db").run, steps)


def test_the_machine_reaches_both_a_replay_and_a_resync() -> None:
    """A run that goes past the log's bound resyncs; one that does not, replays."""
    steps: list[Step] = [
        Resume(0, 0),
        Resume(1, 0),
        Drop(0),
        Drop(1),
        Broadcast(3),
        Resume(0, 0),
        Broadcast(4),
        Broadcast(4),
        Resume(1, 0),
    ]
    with tempfile.TemporaryDirectory() as folder:
        machine = _Machine(Path(folder) / "rooms.db")
        trio.run(machine.run, steps)
    assert (machine.replays, machine.resyncs) == (1, 1)
