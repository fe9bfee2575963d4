"""The relay link's raw RESP connection, against a real redis-server and a byte-by-byte
stream."""

from __future__ import annotations

import re
from typing import final

import pytest
import trio
import trio.testing

from trio_rooms import _resp
from trio_rooms._resp import (
    RespConnection,
    RespError,
    open_resp,
    resp_command,
    resp_prefix,
    resp_tail,
)
from trio_rooms.backplane._connection import ConnectionEndedError

from .redis_server import RedisServer

PATIENCE = 10.0


async def test_pipelined_replies_of_every_type_come_back_in_order(
    redis_server: RedisServer,
) -> None:
    """One write of six commands gets their six replies in order: a simple string, a bulk
    string, an integer, nil, an array and an error reply returned, not raised."""
    commands = [
        (b"SET", b"k", b"v\r\n1"),
        (b"GET", b"k"),
        (b"INCR", b"n"),
        (b"GET", b"missing"),
        (b"MGET", b"k", b"missing"),
        (b"NOSUCHCOMMAND",),
    ]
    with trio.fail_after(PATIENCE):
        async with open_resp(redis_server.url, timeout=1.0) as connection:
            await connection.send(b"".join(resp_command(*command) for command in commands))
            replies = [await connection.reply() for _ in commands]
            assert await connection.call(b"PING") == b"PONG"  # nothing left over
    assert replies[:5] == [b"OK", b"v\r\n1", 1, None, [b"v\r\n1", None]]
    assert isinstance(replies[5], RespError)
    assert "NOSUCHCOMMAND" in str(replies[5])


async def test_a_command_made_of_a_prefix_and_its_last_argument_is_the_whole_one(
    redis_server: RedisServer,
) -> None:
    """`resp_prefix` and `resp_tail` make the bytes `resp_command` makes, whatever the
    last argument (empty, with CRLF, large), and Redis runs them."""
    lasts = [b"", b"v\r\n1", b"x" * 300_000]
    prefix = resp_prefix(3, b"SET", b"k")
    with trio.fail_after(PATIENCE):
        async with open_resp(redis_server.url, timeout=1.0) as connection:
            for last in lasts:
                command = resp_tail(prefix, last)
                assert command == resp_command(b"SET", b"k", last)
                await connection.send(command)
                assert await connection.reply() == b"OK"
                assert await connection.call(b"GET", b"k") == last


async def test_a_large_reply_read_in_many_pieces_is_one_bulk_string(
    redis_server: RedisServer,
) -> None:
    """A 3 MiB stream entry comes back from XRANGE whole, however the socket splits it."""
    value = bytes(range(256)) * (3 * 4096)
    with trio.fail_after(PATIENCE):
        async with open_resp(redis_server.url, timeout=1.0) as connection:
            added = await connection.call(b"XADD", b"s", b"*", b"e", value)
            assert isinstance(added, bytes)
            assert await connection.call(b"XRANGE", b"s", b"-", b"+") == [[added, [b"e", value]]]


@final
class _Steps(trio.abc.Instrument):
    """Counts the steps of one task: a step begins each time it resumes from a yield."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def test_a_write_the_socket_takes_leaves_in_the_callers_turn_and_a_large_one_whole(
    redis_server: RedisServer,
) -> None:
    """A small write is out without the writing task yielding to the scheduler, and a
    32 MiB one, more than the socket takes at once, still reaches Redis whole."""
    large = b"x" * (32 * 1024 * 1024)
    steps = _Steps(trio.lowlevel.current_task())
    with trio.fail_after(PATIENCE):
        async with open_resp(redis_server.url, timeout=1.0) as connection:
            trio.lowlevel.add_instrument(steps)
            try:
                await connection.send(resp_command(b"SET", b"small", b"1"))
            finally:
                trio.lowlevel.remove_instrument(steps)
            await connection.send(resp_command(b"SET", b"large", large))
            assert [await connection.reply(), await connection.reply()] == [b"OK", b"OK"]
            assert await connection.call(b"STRLEN", b"large") == len(large)
    assert steps.steps == 0


async def test_replies_split_at_every_byte_are_parsed_when_complete() -> None:
    """Nested replies written one byte at a time come out whole, each once complete (an
    array's items too: nil, empty and other bulk strings among other types)."""
    reply = b"*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\ne\r\n$5\r\nhello\r\n:42\r\n" + b"$-1\r\n+OK\r\n"
    reply += b"*4\r\n$-1\r\n$0\r\n\r\n+s\r\n$2\r\n\r\n\r\n"
    ours, theirs = trio.testing.memory_stream_pair()
    connection = RespConnection(ours)
    got: list[object] = []

    async def read() -> None:
        got.extend([await connection.reply() for _ in range(4)])

    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            for index in range(len(reply)):
                await trio.testing.wait_all_tasks_blocked()
                await theirs.send_all(reply[index : index + 1])
    assert got == [[[b"1-1", [b"e", b"hello"]], 42], None, b"OK", [None, b"", b"s", b"\r\n"]]


async def test_a_closed_connection_ends_the_wait_for_a_reply() -> None:
    """A reply awaited from a connection that Redis closes raises instead of hanging."""
    ours, theirs = trio.testing.memory_stream_pair()
    connection = RespConnection(ours)
    await theirs.send_all(b"$5\r\nhel")
    await theirs.aclose()
    with trio.fail_after(PATIENCE), pytest.raises(ConnectionEndedError, match="closed"):
        await connection.reply()


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 400 Bad Request\r\n", b"$x\r\n", b":1.5\r\n"])
async def test_what_is_not_resp_is_an_error_of_the_connection(garbage: bytes) -> None:
    """Bytes that are not a RESP2 reply (another service on the port) raise `RespError`,
    which the link treats as a lost connection."""
    ours, theirs = trio.testing.memory_stream_pair()
    connection = RespConnection(ours)
    await theirs.send_all(garbage)
    with trio.fail_after(PATIENCE), pytest.raises(RespError, match="not a RESP2 reply"):
        await connection.reply()


async def test_a_password_and_a_database_in_the_url_are_used(redis_server: RedisServer) -> None:
    """With ``requirepass`` set, the URL's password opens the connection and its database
    is selected; a wrong password is refused."""
    assert redis_server.command("CONFIG", "SET", "requirepass", "s3cret") == b"+OK\r\n"
    base = f"redis://:s3cret@127.0.0.1:{redis_server.port}"
    with trio.fail_after(PATIENCE):
        async with open_resp(f"{base}/3", timeout=1.0) as connection:
            assert await connection.call(b"SET", b"where", b"three") == b"OK"
        async with open_resp(f"{base}/0", timeout=1.0) as connection:
            assert await connection.call(b"GET", b"where") is None
        async with open_resp(f"{base}/3", timeout=1.0) as connection:
            assert await connection.call(b"GET", b"where") == b"three"
        with pytest.raises(RespError):
            async with open_resp(f"redis://:wrong@127.0.0.1:{redis_server.port}/0", timeout=1.0):
                pass


async def test_a_url_of_another_scheme_is_refused() -> None:
    """A URL that is not redis://, rediss:// or unix:// is a ValueError naming it."""
    with pytest.raises(ValueError, match=re.escape("http://example.com")):
        async with open_resp("http://example.com", timeout=1.0):
            pass


@final
class _Reads:
    """Counts `RespConnection`'s reads of its socket (`_resp._read_now`), in vain or not."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        read_now = _resp._read_now  # pyright: ignore[reportPrivateUsage]  # (what it counts)

        def counted(socket: trio.socket.SocketType) -> bytes | None:
            self.reads += 1
            return read_now(socket)

        monkeypatch.setattr(_resp, "_read_now", counted)


@pytest.mark.parametrize(("wait_first", "reads"), [(False, 2), (True, 1)])
async def test_a_reply_waited_for_first_is_read_once_and_another_tried_at_once(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, wait_first: bool, reads: int
) -> None:
    """A reply that comes later (a BLPOP's, answered once another client pushes) is read
    once with ``wait_first``; without it, once in vain at first, then once it came."""
    counter = _Reads(monkeypatch)
    got: list[object] = []
    with trio.fail_after(PATIENCE):
        async with open_resp(redis_server.url, timeout=1.0) as waiting:
            start = counter.reads
            await waiting.send(resp_command(b"BLPOP", b"list", b"0"))
            async with trio.open_nursery() as nursery:

                async def read() -> None:
                    got.append(await waiting.reply(wait_first=wait_first))

                nursery.start_soon(read)
                await trio.testing.wait_all_tasks_blocked()
                before = counter.reads - start
                # Not on a `RespConnection`: its reads are not counted.
                assert redis_server.command("LPUSH", "list", "item") == b":1\r\n"
            assert (before, counter.reads - start) == (reads - 1, reads)
    assert got == [[b"list", b"item"]]


async def test_a_reply_awaited_in_a_cancelled_scope_reads_nothing(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled before it reads: the reply stays in the socket for the next `reply`, as
    the commit line expects of a commit cancelled while it waits its turn."""
    counter = _Reads(monkeypatch)
    with trio.fail_after(PATIENCE):
        async with open_resp(redis_server.url, timeout=1.0) as connection:
            await connection.send(resp_command(b"PING"))
            before = counter.reads
            with trio.CancelScope() as scope:
                scope.cancel()
                await connection.reply()
            assert counter.reads == before
            assert await connection.reply() == b"PONG"


@pytest.mark.parametrize("wait_first", [False, True])
async def test_closing_the_connection_ends_a_wait_for_a_reply_on_its_socket(
    redis_server: RedisServer, wait_first: bool
) -> None:
    """A reply awaited on the socket while the connection is closed here (the commit line
    closing under a waiting commit's feet) raises ClosedResourceError, and so does the
    next one."""
    with trio.fail_after(PATIENCE):
        async with open_resp(redis_server.url, timeout=1.0) as connection:
            await connection.send(resp_command(b"BLPOP", b"never", b"0"))
            async with trio.open_nursery() as nursery:

                async def read() -> None:
                    with pytest.raises(trio.ClosedResourceError):
                        await connection.reply(wait_first=wait_first)

                nursery.start_soon(read)
                await trio.testing.wait_all_tasks_blocked()
                await connection.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await connection.reply(wait_first=wait_first)
