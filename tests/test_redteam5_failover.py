"""Red team 5: an owner killed (SIGKILL) while relayed clients of two other nodes pipeline.

Three nodes of `tests.attack_app` on one real redis-server: ``a`` (the owner) in a
subprocess, so that it can be killed, ``b`` and ``c`` in this process. Each relayed
client writes bursts of numbered echoes and an add, the next burst once the last was
answered (or its session moved), so that many messages are in flight on every relay
when the owner dies. The relays re-attach to the next owner: what the dead one had
answered must not be answered again, nor an add applied twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import cast

import msgpack
import orjson
import pytest
import trio

from .attack_app import open_attack_node, serve_attack_rooms
from .redis_server import RedisServer
from .sockets import BINARY, CLOSE, PING, PONG, TEXT, RawClient, client_frame, open_raw
from .test_routes import http

pytestmark = pytest.mark.slow

GAME = "/rooms/game/websocket"
#: Bounds the test once the nodes run: the lease TTL many times over.
PATIENCE = 40.0
#: Echoes per burst: past the credit window's half (16), so a CREDIT is owed mid-burst.
BURST = 24

Message = dict[str, object]


class _Board:
    """Every reader says when something arrived, for the senders and the test to look."""

    def __init__(self) -> None:
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


def _decode(opcode: int, payload: bytes) -> Message | None:
    """A text frame's JSON or a binary frame's msgpack; None for any other frame."""
    if opcode == TEXT:
        return cast("Message", orjson.loads(payload))
    if opcode == BINARY:
        return cast("Message", msgpack.unpackb(payload))
    return None


class _Pipeliner:
    """A client that writes a burst of echoes and an add at once, again and again, in
    JSON text frames or (``binary``) msgpack binary ones."""

    def __init__(self, client: RawClient, board: _Board, *, binary: bool = False) -> None:
        self.client = client
        self._board = board
        self._binary = binary
        self.received: list[Message] = []
        #: Every frame's opcode but data, pings and pongs; -1 once the connection ended.
        self.others: list[int] = []
        self.sent_echoes = 0
        self.sent_adds = 0
        #: The ``n`` of the last echo answered, and the welcomes so far.
        self.last_echo = -1
        self.welcomes = 0
        #: Bursts whose last echo the next owner answered (after the second welcome).
        self.bursts_after_move = 0

    async def read(self) -> None:
        while (frame := await self.client.receive_frame()) is not None:
            message = _decode(frame.opcode, frame.payload)
            if message is not None:
                self.received.append(message)
                kind = message.get("type")
                if kind == "echoed":
                    self.last_echo = cast("int", message["n"])
                    if self.welcomes >= 2 and self.last_echo % BURST == BURST - 1:
                        self.bursts_after_move += 1
                elif kind == "welcome":
                    self.welcomes += 1
            elif frame.opcode not in (PING, PONG):
                self.others.append(frame.opcode)
            self._board.changed()
        self.others.append(-1)
        self._board.changed()

    def of(self, kind: str) -> list[Message]:
        return [message for message in self.received if message.get("type") == kind]

    def echoes(self) -> list[int]:
        return [cast("int", message["n"]) for message in self.of("echoed")]

    def frame(self, message: Message) -> bytes:
        if self._binary:
            return client_frame(BINARY, msgpack.packb(message))
        return client_frame(TEXT, orjson.dumps(message))

    async def send(self, until: Callable[[], bool]) -> None:
        while not until():
            first = self.sent_echoes
            frames = [self.frame({"type": "echo", "n": n}) for n in range(first, first + BURST)]
            frames.insert(BURST // 2, self.frame({"type": "add"}))
            self.sent_echoes += BURST
            self.sent_adds += 1
            welcomes = self.welcomes
            last = first + BURST - 1
            await self.client.send(b"".join(frames))
            # The burst's last echo answered, or the session moved (what the dead owner
            # was sent may be lost), or the connection ended (the test fails on it).
            await self._board.wait_until(
                lambda last=last, welcomes=welcomes: (
                    self.last_echo >= last
                    or self.welcomes > welcomes
                    or bool(self.others)
                    or until()
                )
            )


async def test_relays_of_two_nodes_reattached_after_the_owner_is_killed_apply_nothing_twice(
    redis_server: RedisServer,
) -> None:
    """kill -9 of the owner while relayed clients of both other nodes pipeline bursts of
    echoes and adds: every client goes on without a close, moved once to one new owner
    that resumed each session once; no echo is answered twice or out of order, no add is
    acknowledged twice, and the stored count is at most the adds sent."""
    url = redis_server.url
    board = _Board()
    with trio.fail_after(PATIENCE):
        async with (
            serve_attack_rooms(url, "b") as (rooms_b, port_b),
            serve_attack_rooms(url, "c") as (rooms_c, port_c),
            open_attack_node(url, "a") as (process_a, port_a),
            AsyncExitStack() as stack,
        ):
            owner = await stack.enter_async_context(open_raw(port_a, GAME))
            assert orjson.loads(await owner.receive_text())["node"] == "a"
            clients: list[_Pipeliner] = []
            for port, query in [
                (port_b, "?resume=&seen=0"),
                (port_b, ""),
                (port_b, "?format=msgpack&resume=&seen=0"),
                (port_c, "?resume=&seen=0"),
                (port_c, "?resume="),
                (port_c, "?format=msgpack"),
            ]:
                raw = await stack.enter_async_context(open_raw(port, GAME + query))
                clients.append(_Pipeliner(raw, board, binary="msgpack" in query))

            def done(client: _Pipeliner) -> bool:
                return client.bursts_after_move >= 3 or bool(client.others)

            async with trio.open_nursery() as nursery:
                for client in clients:
                    nursery.start_soon(client.read)
                    nursery.start_soon(client.send, functools.partial(done, client))
                await board.wait_until(
                    lambda: all(client.last_echo >= 3 * BURST for client in clients)
                )
                process_a.kill()  # bursts are in flight on every relay
                await board.wait_until(lambda: all(map(done, clients)))
                nursery.cancel_scope.cancel()

            acknowledged: list[int] = []
            ids: set[str] = set()
            new_owners: set[str] = set()
            for client in clients:
                assert client.others == [], client.others  # no close: nobody reconnected
                welcomes = client.of("welcome")
                assert [w["node"] for w in welcomes][:1] == ["a"]
                assert len(welcomes) == 2, welcomes
                assert welcomes[0]["session"] == welcomes[1]["session"]
                ids.add(cast("str", welcomes[0]["session"]))
                new_owners.add(cast("str", welcomes[1]["node"]))
                echoes = client.echoes()
                # Each echo answered once, in order (a gap is what the dead owner lost).
                assert echoes == sorted(set(echoes)), echoes
                assert echoes[-1] < client.sent_echoes
                counted = client.of("counted")
                counts = [cast("int", m["count"]) for m in counted]
                adds = [cast("int", m["adds"]) for m in counted]
                assert counts == sorted(set(counts)), counts
                assert adds == sorted(set(adds)), adds
                assert len(counted) <= client.sent_adds
                acknowledged += counts
            assert len(new_owners) == 1, new_owners
            assert new_owners <= {"b", "c"}
            assert len(acknowledged) == len(set(acknowledged)), sorted(acknowledged)
            total = (await http(port_b, "GET", "/rooms/game/count")).json()["count"]
            assert max(acknowledged) <= total <= sum(client.sent_adds for client in clients)
            tally_client = clients[0]
            await tally_client.client.send(tally_client.frame({"type": "ask"}))
            tallies = await _next_tally(tally_client)
            assert tallies["sessions"] == sorted(ids)
            assert tallies["members"] == tallies["sessions"]
            assert tallies["resumes"] == dict.fromkeys(ids, 1)
            assert (rooms_b.statistics().errors, rooms_c.statistics().errors) == (0, 0)


async def _next_tally(client: _Pipeliner) -> Message:
    """Read on the client's socket up to the room's next tally."""
    while (frame := await client.client.receive_frame()) is not None:
        assert frame.opcode != CLOSE, frame
        message = _decode(frame.opcode, frame.payload)
        if message is not None and message.get("type") == "tally":
            return message
    raise AssertionError("the connection ended before the tally")
