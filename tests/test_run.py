"""``trio_rooms.run`` and ``open_signal_scope``: SIGINT and SIGTERM as a graceful shutdown."""

from __future__ import annotations

import signal
import sys

import orjson
import pytest
import trio

import trio_rooms

from .processes import open_server_process
from .sockets import CLOSE, RawClient, client_frame, close_payload, connect_socket, raw_handshake

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")
SIGNALS = pytest.mark.parametrize(
    "stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"]
)


async def _join(port: int, room: str) -> RawClient:
    """A client of ``room``, admitted: its own chat message came back."""
    client = await raw_handshake(await connect_socket(port), f"/rooms/{room}/websocket")
    await client.send_text(orjson.dumps({"type": "sendChat", "text": room}).decode())
    assert orjson.loads(await client.receive_text())["text"] == room
    return client


async def _closed_with(client: RawClient) -> int | None:
    """The server's close code, answered with the same (so the server need not wait)."""
    code = await client.close_code()
    if code is not None:
        await client.send(client_frame(CLOSE, close_payload(code)))
    return code


async def _read_line(stream: trio.abc.ReceiveStream) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        assert chunk, f"the server exited first: {line!r}"
        line += chunk
    return line


async def _read_all(stream: trio.abc.ReceiveStream | None) -> bytes:
    assert stream is not None
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


@posix_only
@SIGNALS
async def test_a_signal_shuts_the_quickstart_down_gracefully(stop: signal.Signals) -> None:
    """The README quick start under ``trio_rooms.run``: on Ctrl+C or SIGTERM every client
    gets 1001, and the process exits 0 with nothing on stderr."""
    async with open_server_process("tests.quickstart_app", capture_stderr=True) as (process, port):
        with trio.fail_after(20):
            clients = [await _join(port, room) for room in ("lobby", "lobby", "other")]
            process.send_signal(stop)
            codes = [await _closed_with(client) for client in clients]
            assert await process.wait() == 0
            stderr = await _read_all(process.stderr)
        for client in clients:
            await client.stream.aclose()
    assert codes == [1001, 1001, 1001]
    assert stderr == b""


@posix_only
@SIGNALS
async def test_a_second_signal_during_a_slow_shutdown_ends_the_process_at_once(
    stop: signal.Signals,
) -> None:
    """While ``on_stop`` hangs (60 s shutdown timeout) a second signal ends the process
    at once, killed by that signal, and says so on stderr."""
    async with open_server_process("tests.quickstart_app", "--slow-stop", capture_stderr=True) as (
        process,
        port,
    ):
        assert process.stdout is not None
        with trio.fail_after(20):
            client = await _join(port, "lobby")
            process.send_signal(stop)
            assert await _closed_with(client) == 1001  # sessions first, then on_stop
            assert await _read_line(process.stdout) == b"STOPPING\n"
        process.send_signal(stop)
        with trio.fail_after(5):
            assert await process.wait() == -stop
            stderr = await _read_all(process.stderr)
        await client.stream.aclose()
    assert stderr == f"{stop.name} received again during shutdown: exiting at once\n".encode()


@posix_only
async def test_open_signal_scope_cancels_its_block_and_restores_the_handlers() -> None:
    """A SIGTERM cancels the block, which leaves normally; the handlers before it are back."""
    before = [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)]
    async with trio_rooms.open_signal_scope() as scope:
        signal.raise_signal(signal.SIGTERM)
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)] == before


@posix_only
async def test_open_signal_scope_leaves_an_ignored_signal_ignored() -> None:
    """A signal ignored on entry (a background job's SIGINT) does not stop the block."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        async with trio_rooms.open_signal_scope() as scope:
            signal.raise_signal(signal.SIGTERM)
            await trio.testing.wait_all_tasks_blocked()
        assert not scope.cancelled_caught
    finally:
        signal.signal(signal.SIGTERM, previous)


async def test_an_error_in_the_block_propagates_as_it_was_raised() -> None:
    """The block's exception comes out itself, with its cause, not in an exception group."""
    cause = KeyError("cause")
    with pytest.raises(ValueError, match="boom") as info:
        async with trio_rooms.open_signal_scope():
            raise ValueError("boom") from cause
    assert info.value.__cause__ is cause
    assert info.value.__context__ is None  # not chained to the nursery's group


def test_run_returns_what_the_function_returned() -> None:
    """Without a signal ``run`` is ``trio.run``: the function's value comes back."""

    async def double(value: int) -> int:
        await trio.lowlevel.checkpoint()
        return 2 * value

    assert trio_rooms.run(double, 21) == 42
