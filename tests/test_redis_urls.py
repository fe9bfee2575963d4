"""A node whose Redis URL cannot work (a wrong password, a certificate another CA signed,
a socket that is not there) is refused at its start, clearly and at once, over every kind
of URL; its storage, leases and relays honour the same URL (the relay, storage and
backplane tests run over each kind: `tests.redis_server.EVERY_URL`)."""

from __future__ import annotations

import pytest
import trio

import trio_rooms
from trio_rooms import BackplaneError, StorageError
from trio_rooms._redis import same_redis
from trio_rooms.backplane._relay_commit import RelayedCommits
from trio_rooms.backplane.redis import RedisCluster
from trio_rooms.storage.redis import RedisStorage

from .owner_app import CounterRoom
from .redis_server import EVERY_URL, RedisServer, require_redis

#: A refusal is an answer: far below this (which only bounds a hang).
PATIENCE = 5.0


async def _start(storage_url: str, cluster_url: str) -> None:
    """Open a node on ``storage_url`` and ``cluster_url``; return once it has started."""
    cluster = RedisCluster(cluster_url, lease_ttl=1.5, timeout=0.3)
    storage = RedisStorage(storage_url, timeout=0.3)
    with trio.fail_after(PATIENCE):
        async with trio_rooms.open_rooms(CounterRoom, storage=storage, cluster=cluster):
            pass


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://:{password}@{rest}"


@EVERY_URL
async def test_a_wrong_password_is_refused_at_the_start_naming_the_cause(
    redis_server: RedisServer,
) -> None:
    """With ``requirepass`` set, the right password starts a node; a wrong one is a
    StorageError from the storage and a BackplaneError from the cluster, each saying
    Redis refused it and never showing the password."""
    assert redis_server.command("CONFIG", "SET", "requirepass", "s3cret") == b"+OK\r\n"
    good = _with_password(redis_server.url, "s3cret")
    wrong = _with_password(redis_server.url, "wrong-one")
    await _start(good, good)
    with pytest.raises(StorageError, match="invalid username-password pair"):
        await _start(wrong, wrong)
    with pytest.raises(BackplaneError, match="invalid username-password pair") as raised:
        await _start(good, wrong)
    assert "wrong-one" not in str(raised.value)
    assert redis_server.url.partition("?")[0] in str(raised.value)


@pytest.mark.parametrize("redis_server", ["tls"], indirect=True)
async def test_a_certificate_of_another_ca_is_refused_at_the_start(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A rediss:// URL whose ``ssl_ca_certs`` did not sign the server's certificate fails
    the storage's start and the cluster's with the TLS verification error, not a hang."""
    other = RedisServer(require_redis(), tmp_path_factory.mktemp("other"), kind="tls")
    other_ca = redis_server.url.replace(str(redis_server.ca_file), str(other.ca_file))
    with pytest.raises(StorageError, match="CERTIFICATE_VERIFY_FAILED"):
        await _start(other_ca, other_ca)
    with pytest.raises(BackplaneError, match="CERTIFICATE_VERIFY_FAILED"):
        await _start(redis_server.url, other_ca)


@pytest.mark.parametrize("redis_server", ["unix"], indirect=True)
async def test_a_unix_socket_that_is_not_there_is_refused_at_the_start(
    redis_server: RedisServer,
) -> None:
    """A unix:// URL naming no socket fails the cluster's start with the missing file."""
    nowhere = redis_server.url.replace("/s?", "/nothing-here?")
    with pytest.raises(BackplaneError, match="No such file"):
        await _start(redis_server.url, nowhere)


async def test_a_redis_that_answers_nothing_is_refused_after_start_timeout_not_timeout(
    nursery: trio.Nursery,
) -> None:
    """The start's check that Redis can be reached waits ``start_timeout`` for each
    answer, not the round trips' ``timeout``: a loaded machine's slow first answer
    does not refuse the node. A listener that never answers is refused once it ran out."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    accepted: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        accepted.append(stream)  # kept open, never answered
        await trio.sleep_forever()

    nursery.start_soon(trio.serve_listeners, hold, listeners)
    port = listeners[0].socket.getsockname()[1]
    cluster = RedisCluster(f"redis://127.0.0.1:{port}", timeout=0.05, start_timeout=0.5)
    started = trio.current_time()
    with trio.fail_after(PATIENCE), pytest.raises(BackplaneError, match="could not connect"):
        async with trio_rooms.open_rooms(CounterRoom, cluster=cluster):
            pass
    assert trio.current_time() - started >= 0.5
    assert accepted


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1", True),
        ("redis://127.0.0.1:7000", "redis://127.0.0.1:7000/?db=0", True),
        ("redis://Redis.Example:7000/2", "redis://redis.example:7000?db=2", True),
        ("redis://:one@127.0.0.1:7000/0", "redis://:two@127.0.0.1:7000/0", True),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock?db=0", True),
        ("redis://127.0.0.1:7000/0", "redis://127.0.0.1:7000/1", False),
        ("redis://127.0.0.1:7000", "redis://127.0.0.1:7001", False),
        ("redis://127.0.0.1:7000", "rediss://127.0.0.1:7000", False),
        ("redis://ann@127.0.0.1:7000", "redis://bob@127.0.0.1:7000", False),
        ("unix:///tmp/redis.sock", "unix:///tmp/other.sock", False),
        ("redis://localhost:7000", "redis://127.0.0.1:7000", False),  # not resolved
        ("redis://127.0.0.1:x", "redis://127.0.0.1:x", True),  # no port: as strings
        ("redis://127.0.0.1:x", "redis://127.0.0.1", False),
    ],
)
def test_two_spellings_of_one_redis_are_one_redis(first: str, second: str, same: bool) -> None:
    assert same_redis(first, second) is same
    assert same_redis(second, first) is same


async def test_a_storage_on_the_clusters_redis_spelled_otherwise_gets_the_commit_route(
    redis_server: RedisServer,
) -> None:
    """A `RedisStorage` on the cluster's Redis, its URL spelled another way (no database:
    0), commits relayed frames with the room's writes (`RelayedCommits`)."""
    cluster = RedisCluster(f"redis://127.0.0.1:{redis_server.port}/0", lease_ttl=1.5, timeout=0.3)
    storage = RedisStorage(f"redis://127.0.0.1:{redis_server.port}", timeout=0.3)
    with trio.fail_after(PATIENCE):
        async with trio_rooms.open_rooms(CounterRoom, storage=storage, cluster=cluster):
            assert isinstance(cluster.commit_route, RelayedCommits)
