"""A real ``redis-server`` on a free loopback port, started and stopped by the tests.

``.ci/run`` installs Debian's redis-server when it is missing. Without it the tests
that need one fail when ``CI`` is set and are skipped elsewhere, with the reason.

A server is reached by the nodes through one kind of URL (`UrlKind`): ``redis://`` on
its TCP port, ``unix://`` on a unix socket, or ``rediss://`` on a TLS port whose
certificate a throwaway CA (trustme) signed. It always listens on its TCP port too, for
`RedisServer.command`. Parametrise the ``redis_server`` fixture indirectly with the
kinds (`EVERY_URL`) to run a test over each.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal, TypeAlias

import pytest
import trustme

__all__ = ["EVERY_URL", "RedisServer", "UrlKind", "redis_server", "require_redis"]

#: How the nodes reach the server: ``redis://``, ``unix://`` or ``rediss://``.
UrlKind: TypeAlias = Literal["tcp", "unix", "tls"]

#: Runs a test that takes ``redis_server`` once per kind of URL.
EVERY_URL: Final = pytest.mark.parametrize("redis_server", ["tcp", "unix", "tls"], indirect=True)


def require_redis() -> str:
    """The path of ``redis-server``; fail on CI, skip elsewhere, when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; `stop` or `kill` it and `start` it again on the same port.

    ``persistent``: every write is in its append-only file (fsynced) before the reply, so
    that a start after a `kill` has all of it; otherwise a start begins empty.
    """

    def __init__(
        self,
        executable: str,
        directory: Path,
        *,
        persistent: bool = False,
        kind: UrlKind = "tcp",
    ) -> None:
        self.executable = executable
        self.directory = directory
        self.persistent = persistent
        self.kind = kind
        self.port = _free_port()
        #: The TLS port (kind ``tls``).
        self.tls_port = _free_port() if kind == "tls" else 0
        #: The unix socket (kind ``unix``): in a short folder of its own, as a socket's
        #: path has at most 107 bytes and a test's tmp_path may be longer.
        self.socket_path = Path(tempfile.mkdtemp(prefix="redis-")) / "s" if kind == "unix" else None
        #: A file of the CA that signed the server's certificate (kind ``tls``).
        self.ca_file = directory / "redis-ca.pem"
        self._tls_arguments = self._write_certificate() if kind == "tls" else []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL the nodes use, of this server's kind."""
        if self.socket_path is not None:
            return f"unix://{self.socket_path}?db=0"
        if self.kind == "tls":
            return f"rediss://127.0.0.1:{self.tls_port}/0?ssl_ca_certs={self.ca_file}"
        return f"redis://127.0.0.1:{self.port}/0"

    def _write_certificate(self) -> list[str]:
        """The server's certificate and key in files; the arguments that serve TLS with them."""
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        certificate = self.directory / "redis-cert.pem"
        key = self.directory / "redis-key.pem"
        issued.cert_chain_pems[0].write_to_path(str(certificate))
        issued.private_key_pem.write_to_path(str(key))
        ca.cert_pem.write_to_path(str(self.ca_file))
        return [
            *("--tls-port", str(self.tls_port)),
            *("--tls-cert-file", str(certificate)),
            *("--tls-key-file", str(key)),
            *("--tls-ca-cert-file", str(self.ca_file)),
            *("--tls-auth-clients", "no"),
        ]

    def start(self) -> None:
        """Start the server and return once it accepts connections (within 10 s)."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                *(["--unixsocket", str(self.socket_path)] if self.socket_path else []),
                *self._tls_arguments,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)  # sync-ok: a bounded probe until the new process accepts connections

    def command(self, *args: str) -> bytes:
        """Send one command (RESP); its raw reply, read until a chunk ends a line."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"".join(parts))
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it to exit."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the server (SIGKILL) and wait for it to exit."""
        self._signal(signal.SIGKILL)

    def pause(self) -> None:
        """Stop the server (SIGSTOP): it accepts connections but answers nothing."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT)."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGCONT)

    def remove_files(self) -> None:
        """Remove the unix socket's folder (the server is stopped)."""
        if self.socket_path is not None:
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)

    def _signal(self, signum: signal.Signals) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signum)
        process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server for one test, stopped after it; reached by ``redis://``
    unless parametrised indirectly with another `UrlKind`."""
    kind: UrlKind = getattr(request, "param", "tcp")
    server = RedisServer(require_redis(), tmp_path, kind=kind)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        server.remove_files()
