"""A TCP listener on 127.0.0.1 that never lets a WebSocket connection open.

What a dying server, a restarting one or a broken proxy does: it accepts the TCP
connection, reads the handshake request, then resets or closes the connection, never
answers, answers something else, or upgrades and then drops or says nothing.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from typing import Literal, final

import trio

Behaviour = Literal[
    "reset",  # RST (SO_LINGER 1, 0) once the request has arrived
    "close",  # a clean close (FIN) once the request has arrived
    "silent",  # reads the request and never answers
    "not_http",  # answers with a head that is not HTTP
    "forbidden",  # answers HTTP 403
    "upgrade_then_close",  # completes the handshake, then closes without a frame
    "upgrade_then_silent",  # completes the handshake, then sends nothing
    "upgrade_then_deaf",  # completes the handshake, then neither reads nor sends
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@final
class HalfOpenListener:
    """Accepts connections and treats each one as ``behaviour`` says; counts them."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour: Behaviour = behaviour
        self.accepted = 0
        self._accepted_changed = trio.Event()

    async def serve(
        self, port: int = 0, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on 127.0.0.1:``port`` until cancelled; ``started`` delivers the bound port."""
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def wait_accepted(self, count: int) -> None:
        """Wait until ``count`` connections have been accepted in all."""
        while self.accepted < count:
            await self._accepted_changed.wait()

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        self._accepted_changed.set()
        self._accepted_changed = trio.Event()
        try:
            request = await _read_request(stream)
            match self.behaviour:
                case "reset":
                    linger = struct.pack("ii", 1, 0)
                    stream.socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, linger)
                    stream.socket.close()
                    return
                case "close":
                    return
                case "silent":
                    pass
                case "not_http":
                    await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                case "forbidden":
                    await stream.send_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                case "upgrade_then_close":
                    await stream.send_all(_switching_protocols(request))
                    return
                case "upgrade_then_silent":
                    await stream.send_all(_switching_protocols(request))
                case "upgrade_then_deaf":
                    await stream.send_all(_switching_protocols(request))
                    await trio.sleep_forever()
            await _wait_for_eof(stream)  # until the client gives up
        except trio.BrokenResourceError:
            pass
        finally:
            await trio.aclose_forcefully(stream)


async def _read_request(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            break
        data += chunk
    return data


async def _wait_for_eof(stream: trio.SocketStream) -> None:
    while await stream.receive_some():
        pass


def _switching_protocols(request: bytes) -> bytes:
    """The 101 answer to ``request`` (RFC 6455 section 4.2.2)."""
    found = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", request)
    assert found is not None, request
    accept = base64.b64encode(hashlib.sha1(found.group(1) + _GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
