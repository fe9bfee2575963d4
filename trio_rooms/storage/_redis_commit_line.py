"""`CommitLine`: `RedisStorage.commit` on a raw RESP connection of its own, pipelined.

A commit is the owner's hot path: a relayed session's every reply waits for one (its
frame goes into the replay log first). Through coredis each commit cost about 360 µs of
CPU (its request objects, retry policy, writer and reader tasks), against about 60 µs
for the same EVALSHA written and parsed here (session 8's profile, issue 14). The other,
rarer operations stay on coredis.

The rooms' committers share the line: each writes its EVALSHA as soon as the one before
has been written, then reads its reply in the order they were written. A commit
cancelled after its write leaves its reply to the next in line, who drops it. A lost
connection, a reply that is not RESP, or a write cut short closes the line, and the
commits still waiting on it are tried again on a new one (three tries in all), as
coredis tried a commit again whose connection was lost: the commit leaves the same state
when applied twice (see `make_client`). A commit past ``timeout`` closes it too: the
connection may be hung for good.
"""

from __future__ import annotations

import hashlib
from contextlib import AsyncExitStack
from typing import Final, final

import trio

from .._errors import StorageError
from .._resp import ConnectionEndedError, Reply, RespConnection, RespError, open_resp

__all__ = ["CommitLine"]

#: Tries of a commit whose connection was lost, as `make_client`'s retry policy.
_TRIES: Final = 3
#: Pause before trying again on a new connection.
_RETRY_DELAY: Final = 0.01
#: What losing the line looks like: connect again and try once more.
_LOST: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ConnectionEndedError)


class _LineLostError(Exception):
    """The line was closed while a commit waited on it: try again on a new one."""


@final
class _Line:
    """One connection: the commands written on it, and whose reply comes next.

    Reading a reply is cancel-safe (`RespConnection.reply` consumes nothing it does not
    parse whole), writing one is not: a commit cancelled after its write leaves its reply
    to whoever comes next, who reads it and throws it away before its own.
    """

    __slots__ = (
        "abandoned",
        "broken",
        "connection",
        "discarding",
        "read",
        "sending",
        "stack",
        "turn",
        "written",
    )

    def __init__(self, connection: RespConnection, stack: AsyncExitStack) -> None:
        self.connection = connection
        self.stack = stack
        self.sending = trio.StrictFIFOLock()
        #: Commands written, and replies read (the next reply is command ``read``'s).
        self.written = 0
        self.read = 0
        #: Commands whose callers were cancelled before their replies came.
        self.abandoned: set[int] = set()
        self.discarding = False
        self.turn = trio.lowlevel.ParkingLot()
        self.broken = False

    async def call(self, command: bytes) -> Reply:
        """Write ``command`` after the ones before, and return its reply.

        Raises:
            _LineLostError: the line broke (here or under another commit's feet).
        """
        ticket, stage = -1, "waiting"
        try:
            async with self.sending:
                self._check()
                ticket, stage = self.written, "sending"
                await self.connection.send(command)
                self.written, stage = self.written + 1, "written"
            return await self._reply(ticket)
        except _LineLostError:
            raise
        except trio.Cancelled:
            if stage == "sending":  # part of it may be out: nothing after it would parse
                await self.close()
            elif stage == "written":  # its reply still comes: the next in line drops it
                self.abandoned.add(ticket)
                self.turn.unpark_all()
            raise
        except BaseException as exc:
            await self.close()
            if isinstance(exc, (*_LOST, RespError)):
                raise _LineLostError(str(exc)) from exc
            raise

    async def _reply(self, ticket: int) -> Reply:
        """Command ``ticket``'s reply, once the ones before were read (or thrown away)."""
        while True:
            self._check()
            if self.read == ticket:
                # A script's reply: seldom there yet (Redis runs it meanwhile).
                reply = await self.connection.reply(wait_first=True)
                self._next()
                return reply
            if self.read in self.abandoned and not self.discarding:
                self.discarding = True
                try:
                    await self.connection.reply()
                finally:
                    self.discarding = False
                self.abandoned.discard(self.read)
                self._next()
                continue
            await self.turn.park()

    def _next(self) -> None:
        self.read += 1
        self.turn.unpark_all()

    def _check(self) -> None:
        if self.broken:
            raise _LineLostError("the commit connection to Redis was closed")

    async def close(self) -> None:
        if not self.broken:
            self.broken = True
            self.turn.unpark_all()
            with trio.CancelScope(shield=True):
                await self.stack.aclose()


def _bulks(*args: bytes) -> bytes:
    """``args`` as RESP bulk strings: a command's arguments without its count."""
    return b"".join(b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args)


@final
class CommitLine:
    """The commits of one `RedisStorage`, on one raw RESP connection, made when needed.

    Args:
        url: Redis's address.
        timeout: Bound on each commit, connecting included.
        script: The commit script's source.
    """

    def __init__(self, url: str, timeout: float, script: str | bytes) -> None:
        self._url = url
        self._timeout = timeout
        self._script = script.encode() if isinstance(script, str) else script
        sha = hashlib.sha1(self._script).hexdigest().encode()
        # A command's first two arguments, made once: the arguments follow them.
        self._evalsha = _bulks(b"EVALSHA", sha)
        self._eval = _bulks(b"EVAL", self._script)
        self._line: _Line | None = None
        self._connecting = trio.Lock()
        self._closed = False

    async def call(self, count: int, arguments: bytes) -> Reply:
        """Run the script with ``arguments``, the RESP bytes of ``count`` bulk strings
        (its number of keys, its KEYS, its ARGV), within ``timeout``; its reply.

        Raises:
            StorageError: Redis refused it, or was not reached (three tries) in time.
        """
        # A scope, not `fail_after` (a generator context manager more per commit: hot).
        with trio.CancelScope(deadline=trio.current_time() + self._timeout):
            return await self._call(count + 2, arguments)
        # Only the scope's own deadline gets here: the connection may be hung for good
        # (a dead peer sends no reset).
        await self._drop()
        raise StorageError(f"Redis did not commit within {self._timeout} s") from (
            trio.TooSlowError()
        )

    async def _call(self, count: int, arguments: bytes) -> Reply:
        for tried in range(1, _TRIES + 1):
            try:
                line = await self._connected()
                reply = await line.call(b"*%d\r\n%b%b" % (count, self._evalsha, arguments))
                if isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT"):
                    # A Redis that restarted or flushed its scripts: EVAL caches it again.
                    reply = await line.call(b"*%d\r\n%b%b" % (count, self._eval, arguments))
            except (_LineLostError, *_LOST) as exc:
                if self._closed or tried == _TRIES:
                    raise StorageError(f"Redis could not commit: {exc}") from exc
                await trio.sleep(_RETRY_DELAY)  # sync-ok: backoff before connecting again
                continue
            if isinstance(reply, RespError):
                raise StorageError(f"Redis could not commit: {reply}")
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connected(self) -> _Line:
        line = self._line
        if line is not None and not line.broken and not self._closed:
            return line  # (the line's lock is the checkpoint: not this one's too)
        async with self._connecting:
            if self._closed:
                raise StorageError("Redis storage is not open")
            line = self._line
            if line is None or line.broken:
                stack = AsyncExitStack()
                try:
                    # open_resp bounds the connect by 3 times its timeout: ours, in all.
                    resp = open_resp(self._url, timeout=self._timeout / 3)
                    connection = await stack.enter_async_context(resp)
                    # Not one of the relays' (open_resp names it so), to CLIENT LIST.
                    await connection.call(b"CLIENT", b"SETNAME", b"trio_rooms.commits")
                except BaseException as exc:
                    with trio.CancelScope(shield=True):
                        await stack.aclose()
                    if isinstance(exc, RespError):  # AUTH, SELECT or SETNAME refused
                        raise StorageError(f"Redis refused the connection: {exc}") from exc
                    raise
                line = self._line = _Line(connection, stack)
            return line

    async def _drop(self) -> None:
        line, self._line = self._line, None
        if line is not None:
            await line.close()

    async def aclose(self) -> None:
        """Close the connection; a commit still waiting on it raises `StorageError`."""
        self._closed = True
        await self._drop()
