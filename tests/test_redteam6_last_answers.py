"""Red team of the answers a session gives after its client went (logged for its resume,
which waits for them: `SessionRunner.send_closing`, `RoomRunner.going`/`wait_gone`): a
frame or message lost or doubled around a session's end and resume.

Real sockets on 127.0.0.1 (port 0), raw WebSocket clients, a real SQLite file. What the
client must see is what the room sent for it, in the order it sent it (`GameRoom.order`).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_rooms import RoomsConfig

from .redteam6_app import (
    GAME,
    GameRoom,
    Got,
    Served,
    message,
    read_session,
    read_until,
    serve_game,
)
from .sockets import CLOSE, RawClient, client_frame, close_payload, open_raw

PATIENCE = 30


async def _first(
    port: int, adds: int | list[str], *, drop: str = "close", wire: str = "json"
) -> tuple[str, str]:
    """A resumable session: its id and token; then ``adds`` adds (or those messages) in
    one write, and the client goes (``drop``: its close frame, or a TCP reset)."""
    query = "?resume=&seen=0" + ("&format=msgpack" if wire == "msgpack" else "")
    kinds = ["add"] * adds if isinstance(adds, int) else adds
    async with open_raw(port, GAME + query) as client:
        session = await read_session(client, wire)
        burst = b"".join(message(kind, wire) for kind in kinds)
        if drop == "close":
            await client.send(burst + client_frame(CLOSE, close_payload(1001, "going away")))
            assert await client.close_code() == 1001
        else:
            await client.send(burst)
            client.reset()
    return str(session["id"]), str(session["token"])


def _resume(token: str, seen: int, wire: str = "json") -> str:
    return f"{GAME}?resume={token}&seen={seen}" + ("&format=msgpack" if wire == "msgpack" else "")


async def _settled(room: GameRoom, client: RawClient, got: Got, wire: str = "json") -> Got:
    """Once nothing runs in the room but this client's session: a shout, and what the
    client reads up to it (frames arrive in the order the room sent them)."""
    shouts = room.shouts + 1
    await client.send(message("shout", wire))
    return await read_until(client, got, lambda got: ("shouted", shouts) in got.frames, wire)


async def test_a_resume_at_once_gets_every_answer_once_then_its_own(tmp_path: Path) -> None:
    """Baseline: a resume that comes while the last adds are handled (each reads the
    storage) replays every answer once, in order, and its own add is answered after."""
    adds = 20

    def setup(room: GameRoom) -> None:
        room.released.set()
        room.read_storage = True

    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path, setup=setup) as served:
            _, token = await _first(served.port, adds)
            room = served.room
            async with open_raw(served.port, _resume(token, 0)) as client:
                session = await read_session(client)
                assert session["resumed"] is True
                assert session["replayed"] == adds
                await client.send(message("add"))
                got = await read_until(client, Got(), lambda got: len(got.frames) == adds + 1)
                assert got.frames == [("counted", n) for n in range(1, adds + 2)]
                got = await _settled(room, client, got)
            await room.all_gone()
            assert room.going() == {}


async def test_a_drain_slower_than_the_bound_still_loses_no_answer(tmp_path: Path) -> None:
    """The old session's handler takes longer than the resume waits (3 x close_timeout;
    here its adds wait on the room until the resume has claimed the token): whatever the
    room handled is still answered to the resumed client exactly once, in order, and the
    resumed client's own add after all of them (README: close_timeout cuts "a handler at
    close" short; the resume waits for the session's end)."""
    adds = 10

    def setup(room: GameRoom) -> None:
        room.released.set()
        room.permits = trio.Semaphore(0)

    config = RoomsConfig(close_timeout=0.2)
    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path, config, setup=setup) as served:
            session_id, token = await _first(served.port, adds)
            room = served.room
            permits = room.permits
            assert permits is not None
            served.storage.watch_next_claim(session_id)
            async with open_raw(served.port, _resume(token, 0)) as client:
                await served.storage.claimed.wait()  # past the bound: its 0.6 s, not ours
                await trio.testing.wait_all_tasks_blocked()  # it waits for the room
                for _ in range(adds + 1):
                    permits.release()
                session = await read_session(client)
                assert session["resumed"] is True
                await client.send(message("add"))
                await room.until(lambda: len(room.closes) == 1)  # the old session ended
                got = await _settled(room, client, Got())
            sent = room.for_session(session_id)
            assert got.frames == sent, f"got {got.frames}, the room sent {sent}"


async def test_two_resumes_of_one_token_while_it_drains(tmp_path: Path) -> None:
    """Two connections resume with one token while the session still handles its last
    adds: exactly one resumes, and it gets every answer once, in order; the other gets a
    fresh session, and none of the first session's frames."""
    adds = 15
    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path) as served:
            session_id, token = await _first(served.port, adds)
            room = served.room
            async with (
                open_raw(served.port, _resume(token, 0)) as one,
                open_raw(served.port, _resume(token, 0)) as two,
            ):
                await room.resumes_waiting(session_id, 2)
                room.released.set()
                sessions = [await read_session(one), await read_session(two)]
                assert sorted(bool(s["resumed"]) for s in sessions) == [False, True]
                winner, loser = (one, two) if sessions[0]["resumed"] else (two, one)
                won, lost = sorted(sessions, key=lambda s: not s["resumed"])
                assert won["id"] == session_id
                assert won["replayed"] == adds
                assert lost["id"] != session_id
                got = await _settled(room, winner, Got())
                assert got.frames == [("counted", n) for n in range(1, adds + 1)] + [("shouted", 1)]
                other = await read_until(loser, Got(), lambda got: len(got.frames) == 1)
                assert other.frames == [("shouted", 1)]
            await room.all_gone()
            assert room.going() == {}


async def test_a_wrong_secret_while_it_drains_spends_nothing(tmp_path: Path) -> None:
    """A resume with the session's id but a wrong secret, while the session drains: it
    gets a fresh session within the bound, and the real token still resumes, with every
    answer once, in order."""
    adds = 12
    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path) as served:
            session_id, token = await _first(served.port, adds)
            room = served.room
            forged = f"{session_id}.{'A' * 43}"
            async with open_raw(served.port, _resume(forged, 0)) as impostor:
                await room.resumes_waiting(session_id, 1)
                async with open_raw(served.port, _resume(token, 0)) as client:
                    await room.resumes_waiting(session_id, 2)
                    room.released.set()
                    fake = await read_session(impostor)
                    assert fake["resumed"] is False
                    assert fake["id"] != session_id
                    real = await read_session(client)
                    assert real["resumed"] is True
                    assert real["id"] == session_id
                    assert real["replayed"] == adds
                    got = await _settled(room, client, Got())
                    expected = [("counted", n) for n in range(1, adds + 1)] + [("shouted", 1)]
                    assert got.frames == expected
                    other = await read_until(impostor, Got(), lambda got: len(got.frames) == 1)
                    assert other.frames == [("shouted", 1)]
            await room.all_gone()
            assert room.going() == {}


@pytest.mark.parametrize("drop", ["close", "reset"])
async def test_broadcasts_while_it_drains_reach_it_once_in_the_rooms_order(
    tmp_path: Path, drop: str
) -> None:
    """Another client shouts before, while and after the session drains (its client gone
    by its close frame or a TCP reset, its adds waiting on the room): on resume its client
    gets every broadcast and every answer once, in the order the room sent them."""
    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path) as served:
            async with open_raw(served.port, GAME) as other:
                await other.send(message("shout") * 2)
                await read_until(other, Got(), lambda got: len(got.frames) == 2)
                room = served.room
                query = "?resume=&seen=0"
                async with open_raw(served.port, GAME + query) as client:
                    session = await read_session(client)
                    session_id, token = str(session["id"]), str(session["token"])
                    await client.send(message("shout"))
                    seen = await read_until(client, Got(), lambda got: len(got.frames) == 1)
                    assert seen.frames == [("shouted", 3)]
                    burst = (message("add") + message("shout")) * 6
                    if drop == "close":
                        frame = client_frame(CLOSE, close_payload(1001, "going away"))
                        await client.send(burst + frame)
                        assert await client.close_code() == 1001
                    else:
                        await client.send(burst)
                        client.reset()
                await other.send(message("shout") * 3)
                async with open_raw(served.port, _resume(token, 1)) as client:
                    resumed = await _released_and_resumed(room, client, session_id)
                    assert resumed["resumed"] is True
                    await client.send(message("add"))
                    await room.until(lambda: len(room.closes) == 1)
                    got = await _settled(room, client, Got())
            sent = room.for_session(session_id)
            assert got.frames == sent[1:], f"got {got.frames}, the room sent {sent}"
            assert room.count == 7  # its burst was handled whole, and the resumed add
            await room.all_gone()
            assert room.going() == {}


async def _released_and_resumed(
    room: GameRoom, client: RawClient, session_id: str, wire: str = "json"
) -> dict[str, object]:
    """Once ``client``'s resume waits for the going session: its adds go on; the resumed
    session's ``$session`` frame."""
    await room.resumes_waiting(session_id, 1)
    room.released.set()
    return await read_session(client, wire)


async def _is_going(room: GameRoom, session_id: str) -> None:
    """Wait until the room holds ``session_id`` as going (its client's loss was seen)."""
    while session_id not in room.going():
        await trio.testing.wait_all_tasks_blocked()


@pytest.mark.parametrize("drop", ["close", "reset"])
async def test_drop_resume_drop_resume_keeps_counts_and_order_exact(
    tmp_path: Path, drop: str
) -> None:
    """The resumed session's client goes again while it is being replayed to and still has
    adds of its own to handle; the next resume gets what the client had not seen, once, in
    order: across its connections the client sees what the room sent it, exactly."""
    adds, more = 10, 5

    def setup(room: GameRoom) -> None:
        room.read_storage = True

    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path, setup=setup) as served:
            session_id, token = await _first(served.port, adds)
            room = served.room
            async with open_raw(served.port, _resume(token, 0)) as client:
                session = await _released_and_resumed(room, client, session_id)
                assert session["resumed"] is True
                assert session["replayed"] == adds
                token = str(session["token"])
                first = await read_until(client, Got(), lambda got: len(got.frames) == 3)
                burst = message("add") * more
                if drop == "close":
                    frame = client_frame(CLOSE, close_payload(1001, "going away"))
                    await client.send(burst + frame)
                    first = await read_until(client, first, lambda got: False)
                    assert first.close_code == 1001
                else:
                    await client.send(burst)
                    client.reset()
            await _is_going(room, session_id)
            async with open_raw(served.port, _resume(token, len(first.frames))) as client:
                session = await read_session(client)
                assert session["resumed"] is True
                await client.send(message("add"))
                await room.until(lambda: len(room.closes) == 2 and room.count == adds + more + 1)
                second = await _settled(room, client, Got())
            sent = room.for_session(session_id)
            assert first.frames + second.frames == sent, (first.frames, second.frames, sent)
            await room.all_gone()
            assert room.going() == {}


async def test_on_close_sending_to_itself_is_replayed_after_the_last_answers(
    tmp_path: Path,
) -> None:
    """The going session's ``on_close`` sends to its own session: the resume (waiting for
    it) replays that after every answer, once."""
    adds = 8

    def setup(room: GameRoom) -> None:
        room.bye = True

    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path, setup=setup) as served:
            session_id, token = await _first(served.port, adds)
            room = served.room
            async with open_raw(served.port, _resume(token, 0)) as client:
                session = await _released_and_resumed(room, client, session_id)
                assert session["replayed"] == adds + 1
                got = await _settled(room, client, Got())
            counted = [("counted", n) for n in range(1, adds + 1)]
            assert got.frames == [*counted, ("bye", adds), ("shouted", 1)]
            await room.all_gone()
            assert room.going() == {}


async def test_many_clients_going_and_resuming_leave_no_going_entry(tmp_path: Path) -> None:
    """Twenty clients burst adds and go (close frame or reset), half of them resume at
    once: each resumed one gets its own answers once, in order, then its next add's; once
    every session ended the room holds none as going."""
    clients, adds = 20, 4

    def setup(room: GameRoom) -> None:
        room.released.set()
        room.read_storage = True

    async def one(index: int, served: object) -> None:
        assert isinstance(served, Served)
        drop = "close" if index % 2 else "reset"
        session_id, token = await _first(served.port, adds, drop=drop)
        if index % 4 >= 2:
            return
        room = served.room
        async with open_raw(served.port, _resume(token, 0)) as client:
            session = await read_session(client)
            assert session["resumed"] is True
            replayed = int(session["replayed"])
            got = await read_until(client, Got(), lambda got: len(got.frames) == replayed)
            await client.send(message("add"))
            got = await read_until(client, got, lambda got: len(got.frames) == replayed + 1)
            assert got.frames == room.for_session(session_id)
            await client.send(client_frame(CLOSE, close_payload(1000)))
            assert await client.close_code() == 1000

    with trio.fail_after(PATIENCE):
        async with (
            serve_game(tmp_path, setup=setup) as served,
            open_raw(served.port, GAME) as watcher,  # the room stays up
        ):
            async with trio.open_nursery() as nursery:
                for index in range(clients):
                    nursery.start_soon(one, index, served)
            room = served.room
            await room.until(lambda: len(room.closes) == clients + clients // 2)
            await room.all_gone()
            assert room.going() == {}
            await watcher.send(message("shout"))
            await read_until(watcher, Got(), lambda got: len(got.frames) == 1)


async def test_a_shutdown_while_a_resume_waits_for_a_stuck_drain_ends_in_bounds(
    tmp_path: Path,
) -> None:
    """The server stops while a resume waits for a going session whose handler never
    returns by itself: it stops within close_timeout (the stuck handler's bound), not
    the resume's 3 x close_timeout; the resuming client gets 1001 or its connection ends."""
    close_timeout = 2.0
    config = RoomsConfig(close_timeout=close_timeout, shutdown_timeout=0.5)
    with trio.fail_after(PATIENCE):
        async with AsyncExitStack() as stack:
            async with serve_game(tmp_path, config) as served:
                session_id, _token = await _first(served.port, 3)
                room = served.room
                client = await stack.enter_async_context(open_raw(served.port, _resume(_token, 0)))
                await room.resumes_waiting(session_id, 1)
                started = trio.current_time()
            stopped = trio.current_time() - started
            assert stopped < close_timeout + 1.5, stopped
            assert await client.close_code() in (1001, None)
            assert room.count == 0  # the stuck add never went on


async def test_a_session_that_cannot_resume_logs_nothing_after_its_client_went(
    tmp_path: Path,
) -> None:
    """A session without ``?resume`` (in a room whose log is active: another client can
    resume): what it sends after its client went is dropped, never logged, and the room
    never holds it as going."""
    adds = 5
    with trio.fail_after(PATIENCE):
        async with (
            serve_game(tmp_path) as served,
            open_raw(served.port, GAME + "?resume=&seen=0") as watcher,
        ):
            await read_session(watcher)
            room = served.room
            async with open_raw(served.port, GAME) as client:
                burst = message("add") * adds
                await client.send(burst + client_frame(CLOSE, close_payload(1001)))
                assert await client.close_code() == 1001
            await trio.testing.wait_all_tasks_blocked()
            assert room.going() == {}
            room.released.set()
            await room.until(lambda: len(room.closes) == 1)
            assert room.count == adds
            session_id = room.closes[0]
            assert await room.logged_to(session_id) == []
            assert room.going() == {}


@pytest.mark.parametrize("wire", ["json", "msgpack"])
async def test_bytes_and_messages_sent_while_it_drains_replay_as_sent(
    tmp_path: Path, wire: str
) -> None:
    """``send`` and ``send_bytes`` of the going session, interleaved, in either wire
    format: the resume replays each once, in order, as it was sent (raw bytes as raw
    binary frames)."""
    kinds = ["add", "blob"] * 4
    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path) as served:
            session_id, token = await _first(served.port, kinds, wire=wire)
            room = served.room
            async with open_raw(served.port, _resume(token, 0, wire)) as client:
                session = await _released_and_resumed(room, client, session_id, wire)
                assert session["resumed"] is True
                assert session["replayed"] == len(kinds)
                got = await _settled(room, client, Got(), wire)
            expected = [("counted", 1), ("blob", 1), ("counted", 2), ("blob", 2)]
            expected += [("counted", 3), ("blob", 3), ("counted", 4), ("blob", 4)]
            assert got.frames == [*expected, ("shouted", 1)]
            assert room.for_session(session_id) == got.frames


async def test_a_takeover_while_a_handler_runs_loses_no_answer(tmp_path: Path) -> None:
    """The client resumes on a new connection while its old one is still open and one of
    its adds is being handled (waiting on the room): the add is handled, so its answer
    reaches the client exactly once, on one connection or the other."""
    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path) as served:
            async with open_raw(served.port, GAME + "?resume=&seen=0") as old:
                session = await read_session(old)
                token = str(session["token"])
                room = served.room
                await old.send(message("add"))
                while room.released.statistics().tasks_waiting < 1:
                    await trio.testing.wait_all_tasks_blocked()
                async with open_raw(served.port, _resume(token, 0)) as new:
                    before = await read_until(old, Got(), lambda got: False)
                    assert before.close_code == 4001  # taken over
                    room.released.set()
                    resumed = await read_session(new)
                    assert resumed["resumed"] is True
                    after = await _settled(room, new, Got())
            assert room.count == 1
            frames = before.frames + after.frames
            assert frames == [("counted", 1), ("shouted", 1)], frames


async def test_the_old_connection_closing_during_the_resumes_claim_loses_no_answer(
    tmp_path: Path,
) -> None:
    """The client opens its resume first and closes its old connection once that one is
    open (a network switch): the old session goes while the resume is already claiming
    the token (past `wait_gone`), with adds still to handle. Across both connections the
    client gets every answer once, in order, and its next add's after them."""
    adds = 5

    def setup(room: GameRoom) -> None:
        room.released.set()
        room.permits = trio.Semaphore(0)

    with trio.fail_after(PATIENCE):
        async with serve_game(tmp_path, setup=setup) as served:
            async with open_raw(served.port, GAME + "?resume=&seen=0") as old:
                session = await read_session(old)
                session_id, token = str(session["id"]), str(session["token"])
                room = served.room
                permits = room.permits
                assert permits is not None
                await old.send(message("add") * adds)
                while permits.statistics().tasks_waiting < 1:
                    await trio.testing.wait_all_tasks_blocked()
                served.storage.hold_next_load(session_id)
                async with open_raw(served.port, _resume(token, 0)) as new:
                    await served.storage.arrived.wait()  # the resume claims the token
                    await old.send(client_frame(CLOSE, close_payload(1001, "switched")))
                    before = await read_until(old, Got(), lambda got: False)
                    assert before.close_code == 1001
                    await _is_going(room, session_id)
                    permits.release()  # the first add is handled, the second waits
                    await room.until(lambda: room.count == 1)
                    while permits.statistics().tasks_waiting < 1:
                        await trio.testing.wait_all_tasks_blocked()
                    served.storage.go.set()
                    await served.storage.claimed.wait()
                    await trio.testing.wait_all_tasks_blocked()  # it waits for the room
                    for _ in range(adds + 1):
                        permits.release()
                    resumed = await read_session(new)
                    assert resumed["resumed"] is True
                    await new.send(message("add"))
                    await room.until(lambda: len(room.closes) == 1)  # the old one ended
                    after = await _settled(room, new, Got())
            sent = room.for_session(session_id)
            frames = before.frames + after.frames
            assert frames == sent, f"got {frames}, the room sent {sent}"
