"""The coredis client of `RedisStorage`: made, kept entered, and given one command at a time."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar, final

import coredis
import trio
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import RedisError
from coredis.retry import ConstantRetryPolicy

from .._errors import StorageError
from .._redis import explained, guarded

__all__ = ["Client", "ClientRunner", "make_client"]

T = TypeVar("T")

_logger = logging.getLogger("trio_rooms")

Client = coredis.Redis[bytes]


def make_client(url: str, timeout: float) -> Client:
    """A client of the Redis at ``url``, connecting within ``timeout`` seconds."""
    client: Client = coredis.Redis.from_url(
        url,
        connect_timeout=timeout,
        # A command whose connection was lost (Redis restarted) is tried again, at
        # most twice, on a new one: every command here leaves the same state when
        # applied twice (a claim that was applied before its reply was lost is
        # claimed again; a replaced alarm, or a record whose commit changed its
        # token hash, then answers False though it was written as asked).
        # `ClientRunner.call` bounds the whole.
        retry_policy=ConstantRetryPolicy((RedisConnectionError,), retries=2, delay=0.01),
    )
    pool = client.connection_pool
    pool.connection_class = guarded(pool.connection_class)
    return client


@final
class ClientRunner:
    """Keeps a coredis client entered, so its connection pool's task group is open.

    Runs as a system task: cancelled when `trio.run` ends if nobody stopped it, and an
    exception escaping it would crash the run, so none does.
    """

    def __init__(self, client: Client, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.entered = trio.Event()
        self.exited = trio.Event()
        self.error: Exception | None = None
        self._scope = trio.CancelScope()

    async def run(self) -> None:
        try:
            with self._scope:
                async with self.client:
                    self.entered.set()
                    await trio.sleep_forever()
        except* Exception as group:  # a cancellation still propagates
            self.error = group
            _logger.exception("the Redis client of RedisStorage stopped")
        finally:
            self.entered.set()
            self.exited.set()

    async def stop(self) -> None:
        self._scope.cancel()
        await self.exited.wait()

    async def call(self, action: str, command: Callable[[Client], Awaitable[T]]) -> T:
        """Run one command, within ``timeout``, translating every failure to StorageError."""
        if self.exited.is_set():
            raise StorageError("the Redis client has stopped") from self.error
        client = self.client
        try:
            with trio.fail_after(self.timeout):
                try:
                    return await command(client)
                except (RedisError, OSError) as exc:
                    # coredis turns a cancelled connection attempt into an error: if that is
                    # what happened, raise the cancellation (our deadline's or the caller's).
                    await trio.lowlevel.checkpoint_if_cancelled()
                    raise StorageError(f"Redis could not {action}: {explained(exc)}") from exc
        except trio.TooSlowError as exc:
            # The connection may be hung for good (a dead peer sends no reset): drop every
            # connection so the next operation makes a new one.
            client.connection_pool.disconnect()
            raise StorageError(f"Redis did not {action} within {self.timeout} s") from exc
