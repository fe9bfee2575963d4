"""Malformed JSON: an error frame each, no change to the room, and no delay for the others."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

from trio_rooms import Rooms

from ..chat_app import Chat, ChatRoom, SendChat, UserJoined, Whisper
from ..peer import Peer, connect

GARBAGE: dict[str, str] = {
    "truncated": '{"type": "message", "text": "hel',
    "NaN": "NaN",
    "NaN field": '{"type": "message", "text": NaN}',
    "deep nesting": "[" * 100_000,
    "deep object": '{"a":' * 50_000,
    "5000-digit integer": "1" + "0" * 4999,
    "big integer field": '{"type": "message", "text": "x", "n": ' + "9" * 5000 + "}",
    "number": "42",
    "string": '"x"',
    "null": "null",
    "array": '[{"type": "message", "text": "hi"}]',
    "empty": "",
    "lone surrogate escape": '{"type": "message", "text": "\\ud800"}',
    "unknown type": '{"type": "../../admin"}',
    "no type": '{"text": "hi"}',
}
MALLORIES = 3  # garbage senders
ROUNDS = 5  # each sends every garbage frame this many times
# Garbage goes out in runs of this many frames, each run followed by a valid whisper:
# the frames of each kind are many, but no client sends a long run of invalid frames
# in a row nor more than a burst of messages (the per-session abuse limits).
RUN = 5
CANARY_INTERVAL = 0.02  # the canary's pace: well under any per-session rate limit


async def test_garbage_gets_error_frames_and_changes_nothing(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Every malformed frame gets {"error": ...}; nobody else hears of it; the canary is
    answered while the garbage comes, not after it. (How promptly is a benchmark's.)"""
    #: The canary's answered round trips while the garbage still came.
    during: list[int] = []
    done = trio.Event()
    frames = list(GARBAGE.items())
    runs = [frames[i : i + RUN] for i in range(0, len(frames), RUN)]

    async def canary_loop(canary: Peer) -> None:
        seq = 0
        while not done.is_set():
            await canary.send(Whisper(text=str(seq)))
            reply = await canary.receive()
            if not done.is_set():
                during.append(seq)
            assert isinstance(reply, Chat)
            assert (reply.name, reply.text) == ("canary", str(seq))
            seq += 1
            await trio.sleep(CANARY_INTERVAL)  # sync-ok: the canary's pacing, not a wait

    async def mallory_loop(mallory: Peer, errors: dict[str, list[str]]) -> None:
        for round_ in range(ROUNDS):
            for run in runs:  # pipelined: the replies come back in order
                for _, frame in run:
                    await mallory.ws.send_message(frame)
                await mallory.send(Whisper(text=f"{round_}"))
            for run in runs:
                for name, _ in run:
                    errors[name].append(await mallory.receive_text())
                reply = await mallory.receive()
                assert isinstance(reply, Chat)
                assert reply.text == f"{round_}"

    with trio.fail_after(30):
        async with (
            connect(port, "lobby", "name=observer") as observer,
            connect(port, "lobby", "name=canary") as canary,
            _mallories(port) as mallories,
        ):
            for peer in (observer, canary, *mallories):
                await _until_joined(peer, f"mallory{MALLORIES - 1}")
            room = await rooms.get("lobby")
            sessions = [s for s in room.sessions.values() if s.data.name.startswith("mallory")]
            invalid_before = rooms.statistics().invalid
            errors: dict[str, list[str]] = {name: [] for name in GARBAGE}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(canary_loop, canary)
                async with trio.open_nursery() as senders:
                    for mallory in mallories:
                        senders.start_soon(mallory_loop, mallory, errors)
                done.set()
            for name, replies in errors.items():
                assert len(replies) == MALLORIES * ROUNDS
                for reply in replies:
                    assert reply.startswith('{"error":"'), (name, reply)
            garbage_count = MALLORIES * ROUNDS * len(GARBAGE)
            assert rooms.statistics().invalid - invalid_before == garbage_count
            # The room is as it was: only the whispers reached a handler, and nobody
            # else heard anything: the observer's next message is this marker.
            assert [s.data.messages for s in sessions] == [ROUNDS * len(runs)] * MALLORIES
            assert len(room.sessions) == MALLORIES + 2
            await mallories[0].send(SendChat(text="marker"))
            heard = await observer.receive()
            assert isinstance(heard, Chat)
            assert heard.text == "marker"
    assert during  # not kept waiting behind the garbage


@asynccontextmanager
async def _mallories(port: int) -> AsyncGenerator[list[Peer]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(connect(port, "lobby", f"name=mallory{i}"))
            for i in range(MALLORIES)
        ]


async def _until_joined(peer: Peer, name: str) -> None:
    while True:
        message = await peer.receive()
        if isinstance(message, UserJoined) and message.name == name:
            return


@pytest.mark.parametrize("frame", list(GARBAGE.values()), ids=list(GARBAGE))
async def test_each_garbage_frame_alone_gets_its_error(port: int, frame: str) -> None:
    """One frame, one error frame, and the session goes on working."""
    async with connect(port, "lobby") as client:
        await client.receive_until(UserJoined)
        with trio.fail_after(5):
            await client.ws.send_message(frame)
            assert (await client.receive_text()).startswith('{"error":"')
            await client.send(Whisper(text="still here"))
            reply = await client.receive()
        assert isinstance(reply, Chat)
