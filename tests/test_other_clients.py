"""Third-party clients against both transports: Python's websockets, Node's ws, Chromium.

Each one connects, makes a typed round trip in JSON and in msgpack, gets a frame past
64 KiB whole, sees the close codes of either side (1000, an application's code, none at
all; a server's 1003, 1008 and 1009 for bad input; 1001 at shutdown, after everything sent
before it), pings (those that can), resumes its session with a token or takes it over
(4001), and talks to a parked session. The tests drive them through one small interface,
`OtherClient`: frames in and out, then a `Closed` saying how the connection ended, as
that client reports it.

The websockets client is its threaded (sync) one; Node's ws runs in ``tests/ws_client.mjs``
(lines of JSON on its stdin and stdout); Chromium's WebSocket is driven by Playwright from
a thread of its own, in one page for the module. Without node, ws or chromium those tests
skip, and fail on CI.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    ExitStack,
    asynccontextmanager,
)
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, assert_never, cast, final

import attrs
import msgpack
import orjson
import pytest
import trio
import websockets.sync.client
from websockets.exceptions import ConnectionClosed

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Rooms, RoomsConfig, Session

from .browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from .parked import wait_parked
from .servers import Transport, client_close_code, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

RetT = TypeVar("RetT")

#: Seconds any one step of a client may take (its own timeouts say so before trio's).
TIMEOUT = 10.0
ROOM = "probe"
#: Small, so that a client can send a frame over it.
MAX_MESSAGE_SIZE = 4096
CONFIG = RoomsConfig(max_invalid_in_a_row=2, max_message_size=MAX_MESSAGE_SIZE)
#: Past ASCII and past 32 bits, as a typed round trip should be.
TEXT = "héllo ✓ 🎲"
NUMBERS = [0, -1, 2**53 - 1]

Wire = Literal["json", "msgpack"]
Frame = str | bytes

# ------------------------------------------------------------------------------ the app


@attrs.frozen
class Echo(Message):
    """Answered with `Echoed`: the same fields and the session's name."""

    text: str
    numbers: tuple[int, ...]


@attrs.frozen
class Leave(Message):
    """The server closes this connection with ``code`` and ``reason``."""

    code: int
    reason: str


@attrs.frozen
class Echoed(Message):
    text: str
    numbers: tuple[int, ...]
    name: str


@attrs.frozen
class Note(Message):
    """What the test broadcasts to the room."""

    n: int
    text: str = ""


@attrs.define
class Named:
    name: str


class ProbeSession(Session[Named, Echoed | Note, Echo | Leave, "ProbeRoom"]):
    async def create_data(self, request: ConnectRequest) -> Named:
        return Named(request.query.get("name", "anon"))

    async def on_message(self, message: Echo | Leave) -> None:
        match message:
            case Echo(text=text, numbers=numbers):
                self.send(Echoed(text=text, numbers=numbers, name=self.data.name))
            case Leave(code=code, reason=reason):
                await self.close(code, reason)
            case _:
                assert_never(message)

    async def on_bytes(self, data: bytes) -> None:
        await self.close(1003, "this room speaks JSON")  # 1003: data it cannot accept

    async def on_close(self, code: int, reason: str) -> None:
        self.room.record_close(code)


class ProbeRoom(Room[ProbeSession]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        #: The code of each on_close, in order, and an event set (and replaced) at each.
        self.closes: list[int] = []
        self._closed = trio.Event()

    def record_close(self, code: int) -> None:
        self.closes.append(code)
        self._closed.set()
        self._closed = trio.Event()

    async def wait_closes(self, count: int) -> list[int]:
        """The codes of the first ``count`` sessions to close, once they have."""
        with trio.fail_after(TIMEOUT):
            while len(self.closes) < count:
                await self._closed.wait()
        return self.closes

    def note(self, n: int) -> None:
        self.broadcast(Note(n=n, text=f"note {n} " + "." * 200))


# -------------------------------------------------------------------- the clients' side


@final
@attrs.frozen
class Closed:
    """How the connection ended, as the client saw it: 1006 when no close frame came."""

    code: int
    reason: str


class OtherClient(Protocol):
    async def send(self, frame: Frame) -> None:
        """Send a text frame (``str``) or a binary one (``bytes``)."""
        ...

    async def receive(self) -> Frame | Closed:
        """The next frame, or once the connection has ended how it did (then no more)."""
        ...

    async def close(self, code: int | None, reason: str) -> None:
        """Start the closing handshake; `receive` then says what the server answered.

        With ``code`` None the close frame has no status code, as a page's ``close()``.
        """
        ...

    async def ping(self, payload: bytes) -> None:
        """Send a ping; return once the pong that answers it has come."""
        ...


#: Opens a client of a ``ws://`` URL, connected once entered.
OpenClient = Callable[[str], AbstractAsyncContextManager[OtherClient]]


def _event_of(event: dict[str, object]) -> Frame | Closed:
    """A frame or close event of the Node and Chromium clients (the same JSON shape)."""
    match event:
        case {"text": str(text)}:
            return text
        case {"binary": str(data)}:
            return base64.b64decode(data)
        case {"close": int(code), "reason": str(reason)}:
            return Closed(code, reason)
        case _:
            raise AssertionError(f"unexpected event {event}")


def _command_of(frame: Frame) -> dict[str, object]:
    if isinstance(frame, str):
        return {"text": frame}
    return {"binary": base64.b64encode(frame).decode()}


# websockets: its threaded client, each call in a worker thread.


@final
class _WebsocketsClient:
    def __init__(self, connection: websockets.sync.client.ClientConnection) -> None:
        self._connection = connection

    async def send(self, frame: Frame) -> None:
        await trio.to_thread.run_sync(self._connection.send, frame)

    async def receive(self) -> Frame | Closed:
        try:
            return await trio.to_thread.run_sync(self._connection.recv, TIMEOUT)
        except ConnectionClosed as exc:
            close = exc.rcvd
            return Closed(1006, "") if close is None else Closed(close.code, close.reason)

    async def close(self, code: int | None, reason: str) -> None:
        if code is None:
            raise NotImplementedError("websockets always sends a status code")
        await trio.to_thread.run_sync(self._connection.close, code, reason)

    async def ping(self, payload: bytes) -> None:
        pong = await trio.to_thread.run_sync(self._connection.ping, payload)
        # websockets sets it only for a pong of the same payload.
        assert await trio.to_thread.run_sync(pong.wait, TIMEOUT), "no pong came"


@asynccontextmanager
async def _open_websockets(url: str) -> AsyncGenerator[OtherClient]:
    connect = functools.partial(
        websockets.sync.client.connect,
        url,
        proxy=None,  # never the environment's HTTP proxy
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        ping_interval=None,
        max_queue=None,  # read on, as the other clients do, whether the test reads or not
    )
    # As a context manager: websockets 17 warns of any other use.
    with ExitStack() as stack:
        connection = await trio.to_thread.run_sync(lambda: stack.enter_context(connect()))
        try:
            yield _WebsocketsClient(connection)
        finally:
            await trio.to_thread.run_sync(stack.close)


# Node's ws: tests/ws_client.mjs, a JSON line per command or event.

NODE_SCRIPT = Path(__file__).parent / "ws_client.mjs"
NODE_WS = Path(__file__).parent.parent / "clients" / "typescript" / "node_modules" / "ws"


def _require_node() -> str:
    """The path of ``node``, with ``ws`` installed where the script finds it."""
    node = shutil.which("node")
    if node is None:
        reason = "node is missing (apt-get install nodejs npm)"
    elif not NODE_WS.is_dir():
        reason = f"ws is not installed: run npm ci in {NODE_WS.parent.parent}"
    else:
        return node
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {reason}")
    pytest.skip(reason)


@final
class _NodeClient:
    def __init__(self, stdin: trio.abc.SendStream, stdout: trio.abc.ReceiveStream) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._buffer = b""

    async def _command(self, command: dict[str, object]) -> None:
        await self._stdin.send_all(orjson.dumps(command) + b"\n")

    async def event(self) -> dict[str, object]:
        with trio.fail_after(TIMEOUT):
            while b"\n" not in self._buffer:
                chunk = await self._stdout.receive_some()
                assert chunk, f"ws_client.mjs ended its output; it had left {self._buffer!r}"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return cast("dict[str, object]", orjson.loads(line))

    async def send(self, frame: Frame) -> None:
        await self._command(_command_of(frame))

    async def receive(self) -> Frame | Closed:
        return _event_of(await self.event())

    async def close(self, code: int | None, reason: str) -> None:
        await self._command({"close": code, "reason": reason})

    async def ping(self, payload: bytes) -> None:
        data = base64.b64encode(payload).decode()
        await self._command({"ping": data})
        assert await self.event() == {"pong": data}


@asynccontextmanager
async def _open_node(node: str, url: str) -> AsyncGenerator[OtherClient]:
    process = await trio.lowlevel.open_process(
        [node, str(NODE_SCRIPT), url], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None
    assert stdout is not None
    try:
        client = _NodeClient(stdin, stdout)
        opened = await client.event()
        assert opened == {"open": True}, f"ws did not connect to {url}: {opened}"
        yield client
        await stdin.aclose()  # the script drops the connection and exits
        with trio.fail_after(TIMEOUT):
            assert await process.wait() == 0
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            await stdin.aclose()
            await stdout.aclose()


# Chromium: Playwright's sync API, bound to the thread that started it.

#: Opens ``clients.get(id)`` in the page: a WebSocket and the queue of its events.
_PAGE_CLIENT = """
([id, url]) => new Promise((opened, failed) => {
  const events = [];
  const waiting = [];
  const push = (event) => {
    const wake = waiting.shift();
    if (wake) wake(event);
    else events.push(event);
  };
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => opened(true);
  const base64 = (data) => {
    let binary = "";
    for (const byte of new Uint8Array(data)) binary += String.fromCharCode(byte);
    return btoa(binary);
  };
  socket.onmessage = ({ data }) =>
    push(typeof data === "string" ? { text: data } : { binary: base64(data) });
  socket.onclose = ({ code, reason }) => {
    push({ close: code, reason });
    failed(new Error(`closed with ${code} before it opened`));
  };
  const next = (ms) => events.length > 0
    ? Promise.resolve(events.shift())
    : new Promise((resolve, reject) => {
        waiting.push(resolve);
        setTimeout(() => reject(new Error(`no event in ${ms} ms`)), ms);
      });
  const send = (command) => socket.send("text" in command
    ? command.text
    : Uint8Array.from(atob(command.binary), (c) => c.charCodeAt(0)));
  const close = (code, reason) => code === null ? socket.close() : socket.close(code, reason);
  globalThis.clients ??= new Map();
  globalThis.clients.set(id, { socket, next, send, close });
})
"""
#: Forgets a client of the page, closing its socket if it is still open.
_PAGE_DROP = """
(id) => {
  const { socket } = clients.get(id);
  clients.delete(id);
  if (socket.readyState < WebSocket.CLOSING) socket.close();
}
"""


@final
class _Chromium:
    """One chromium page for the module, on one thread that every call goes through."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self._playwright: Playwright = self.run(self._start)
        self._browser: Browser = self.run(self._launch)
        self._page: Page = self.run(self._browser.new_page)
        self._opened = 0

    @staticmethod
    def _start() -> Playwright:
        from playwright.sync_api import sync_playwright

        return sync_playwright().start()

    def _launch(self) -> Browser:
        chromium = self._playwright.chromium
        return chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

    def run(self, call: Callable[[], RetT]) -> RetT:
        """``call()`` on the browser's thread (blocking)."""
        return self._thread.submit(call).result()

    async def evaluate(self, script: str, arg: object) -> object:
        """``script`` (a function of ``arg``) in the page; what it returned or resolved to."""
        result: object = await trio.to_thread.run_sync(
            self.run, lambda: self._page.evaluate(script, arg)
        )
        return result

    @asynccontextmanager
    async def open(self, url: str) -> AsyncGenerator[OtherClient]:
        self._opened += 1
        client = _PageClient(self, self._opened)
        await self.evaluate(_PAGE_CLIENT, [client.id, url])
        try:
            yield client
        finally:
            await self.evaluate(_PAGE_DROP, client.id)

    def close(self) -> None:
        try:
            self.run(self._browser.close)
            self.run(self._playwright.stop)
        finally:
            self._thread.shutdown()


@final
class _PageClient:
    def __init__(self, chromium: _Chromium, client_id: int) -> None:
        self._chromium = chromium
        self.id = client_id

    async def send(self, frame: Frame) -> None:
        script = "([id, command]) => clients.get(id).send(command)"
        await self._chromium.evaluate(script, [self.id, _command_of(frame)])

    async def receive(self) -> Frame | Closed:
        script = "([id, ms]) => clients.get(id).next(ms)"
        event = await self._chromium.evaluate(script, [self.id, int(TIMEOUT * 1000)])
        return _event_of(cast("dict[str, object]", event))

    async def close(self, code: int | None, reason: str) -> None:
        script = "([id, code, reason]) => clients.get(id).close(code, reason)"
        await self._chromium.evaluate(script, [self.id, code, reason])

    async def ping(self, payload: bytes) -> None:
        raise NotImplementedError("a page's WebSocket cannot ping")


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def chromium() -> Generator[_Chromium]:
    require_browser()
    browser = _Chromium()
    try:
        yield browser
    finally:
        browser.close()


Kind = Literal["websockets", "node", "chromium"]
KINDS: tuple[Kind, ...] = ("websockets", "node", "chromium")


def _opener(request: pytest.FixtureRequest, kind: Kind) -> OpenClient:
    """How to open a client of ``kind`` (the test skips, or fails on CI, without it)."""
    if kind == "websockets":
        return _open_websockets
    if kind == "node":
        return functools.partial(_open_node, _require_node())
    browser: _Chromium = request.getfixturevalue("chromium")
    return browser.open


@pytest.fixture(params=KINDS)
def open_other(request: pytest.FixtureRequest) -> OpenClient:
    """Each kind of client in turn (a test narrows them with indirect parametrization)."""
    return _opener(request, request.param)


@final
@attrs.frozen
class Server:
    rooms: Rooms[ProbeRoom]
    port: int

    def url(self, query: str = "") -> str:
        target = f"ws://127.0.0.1:{self.port}/rooms/{ROOM}/websocket"
        return f"{target}?{query}" if query else target

    async def room(self) -> ProbeRoom:
        return await self.rooms.get(ROOM)


@pytest.fixture
def probe_config() -> RoomsConfig:
    """The server's config; a test parametrizes it to change it."""
    return CONFIG


@pytest.fixture
async def server(
    nursery: trio.Nursery, transport: Transport, probe_config: RoomsConfig
) -> AsyncGenerator[Server]:
    async with trio_rooms.open_rooms(ProbeRoom, config=probe_config) as rooms:
        yield Server(rooms, await start_server(nursery, transport, rooms))


# ------------------------------------------------------------------------------- helpers


def _encode(wire: Wire, content: dict[str, object]) -> Frame:
    return orjson.dumps(content).decode() if wire == "json" else msgpack.packb(content)


def _decode(wire: Wire, frame: Frame | Closed) -> dict[str, object]:
    if wire == "json":
        assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
        return cast("dict[str, object]", orjson.loads(frame))
    assert isinstance(frame, bytes), f"expected a binary frame, got {frame!r}"
    return cast("dict[str, object]", msgpack.unpackb(frame))


async def _echo(client: OtherClient, text: str, name: str = "anon", wire: Wire = "json") -> None:
    """One round trip: the session is admitted and reads its client."""
    await client.send(_encode(wire, {"type": "echo", "text": text, "numbers": []}))
    echoed: dict[str, object] = {"type": "echoed", "text": text, "numbers": [], "name": name}
    assert _decode(wire, await client.receive()) == echoed


async def _until_closed(client: OtherClient) -> tuple[list[Frame], Closed]:
    """The frames still to come, and how the connection ended."""
    frames: list[Frame] = []
    while not isinstance(event := await client.receive(), Closed):
        frames.append(event)
    return frames, event


async def _session_frame(client: OtherClient) -> dict[str, object]:
    content = _decode("json", await client.receive())
    assert list(content) == ["$session"], f"expected the $session frame first, got {content}"
    return cast("dict[str, object]", content["$session"])


# --------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("wire", ["json", "msgpack"])
async def test_a_typed_message_makes_the_round_trip(
    server: Server, open_other: OpenClient, wire: Wire
) -> None:
    """A client's frame is decoded into its message, and the reply reaches it in its format."""
    async with open_other(server.url(f"format={wire}&name=ann")) as client:
        await client.send(_encode(wire, {"type": "echo", "text": TEXT, "numbers": NUMBERS}))
        reply = _decode(wire, await client.receive())
        assert reply == {"type": "echoed", "text": TEXT, "numbers": NUMBERS, "name": "ann"}


@pytest.mark.parametrize("code", [1000, 4000])
async def test_a_close_from_the_client_is_answered_with_its_code(
    server: Server, open_other: OpenClient, transport: Transport, code: int
) -> None:
    """The server answers a client's close frame with its code and reason, and ends the session."""
    async with open_other(server.url()) as client:
        await _echo(client, "before closing")
        await client.close(code, "done")
        assert await _until_closed(client) == ([], Closed(code, "done"))
    room = await server.room()
    assert await room.wait_closes(1) == [client_close_code(transport, code)]


@pytest.mark.parametrize("open_other", ["node", "chromium"], indirect=True)
async def test_a_close_with_no_code_is_answered_and_seen_as_1005(
    server: Server, open_other: OpenClient, transport: Transport
) -> None:
    """A close frame with no status code (a page's plain close()) ends the session with
    1005; the embedded server answers it with 1000, hypercorn with no code either."""
    async with open_other(server.url()) as client:
        await _echo(client, "before closing")
        await client.close(None, "")
        answer = 1000 if transport == "embedded" else 1005
        assert await _until_closed(client) == ([], Closed(answer, ""))
    room = await server.room()
    assert await room.wait_closes(1) == [client_close_code(transport, 1005)]


@pytest.mark.parametrize("open_other", ["websockets", "node"], indirect=True)
async def test_a_ping_from_the_client_gets_its_pong(server: Server, open_other: OpenClient) -> None:
    """A client's ping is answered with a pong of its payload; the session goes on."""
    async with open_other(server.url()) as client:
        await _echo(client, "before the ping")
        await client.ping(b"are you there?")
        await _echo(client, "after the pong")


async def test_one_broadcast_reaches_each_kind_of_client_in_its_format(
    server: Server, request: pytest.FixtureRequest
) -> None:
    """Clients of every kind in one room, in JSON and msgpack, each get the broadcast."""
    wires: dict[Kind, Wire] = {"websockets": "msgpack", "node": "json", "chromium": "msgpack"}
    async with AsyncExitStack() as stack:
        clients: dict[Kind, OtherClient] = {}
        for kind, wire in wires.items():
            url = server.url(f"format={wire}")
            client = await stack.enter_async_context(_opener(request, kind)(url))
            await _echo(client, f"{kind} is in", wire=wire)
            clients[kind] = client
        room = await server.room()
        room.note(7)
        for kind, client in clients.items():
            note = _decode(wires[kind], await client.receive())
            assert note == {"type": "note", "n": 7, "text": "note 7 " + "." * 200}


@pytest.mark.parametrize("wire", ["json", "msgpack"])
async def test_a_broadcast_past_64_kib_arrives_whole(
    server: Server, open_other: OpenClient, wire: Wire
) -> None:
    """A frame past 65,535 bytes (the 64-bit length form; the notes of the other tests
    take the 16-bit one) reaches the client whole."""
    async with open_other(server.url(f"format={wire}")) as client:
        await _echo(client, "admitted", wire=wire)
        text = "é✓" * 40_000  # 200,000 bytes of UTF-8
        room = await server.room()
        room.broadcast(Note(n=1, text=text))
        assert _decode(wire, await client.receive()) == {"type": "note", "n": 1, "text": text}


#: The longest reason a close frame holds: 123 bytes of UTF-8, 41 three-byte characters.
LONGEST_REASON = "✓" * 41


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, "bye"), (4000, LONGEST_REASON)], ids=["1000", "4000-longest"]
)
async def test_a_close_from_the_server_reaches_the_client_with_its_code_and_reason(
    server: Server, open_other: OpenClient, code: int, reason: str
) -> None:
    """A session's close() reaches the client as its code and reason, after its replies."""
    async with open_other(server.url()) as client:
        await client.send(orjson.dumps({"type": "echo", "text": "last", "numbers": []}).decode())
        await client.send(orjson.dumps({"type": "leave", "code": code, "reason": reason}).decode())
        frames, closed = await _until_closed(client)
        assert [_decode("json", frame)["text"] for frame in frames] == ["last"]
        assert closed == Closed(code, reason)
    room = await server.room()
    assert await room.wait_closes(1) == [code]


BAD_INPUT: dict[str, tuple[list[Frame], int, str | None]] = {
    "binary-on-json": ([b"\x00\xff"], 1003, "this room speaks JSON"),
    "invalid-twice": (["not json", '{"type": "nope"}'], 1008, "too many invalid messages"),
    "too-big": (["x" * (MAX_MESSAGE_SIZE + 1)], 1009, None),
}


@pytest.mark.parametrize(("frames", "code", "reason"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
async def test_bad_input_is_closed_with_the_code_that_names_it(
    server: Server,
    open_other: OpenClient,
    transport: Transport,
    frames: list[Frame],
    code: int,
    reason: str | None,
) -> None:
    """Binary on JSON (here, the app's on_bytes) gets 1003, invalid frames in a row 1008,
    a frame over max_message_size 1009; the session ends with that code."""
    async with open_other(server.url()) as client:
        await _echo(client, "admitted")
        for frame in frames:
            await client.send(frame)
        before, closed = await _until_closed(client)
        errors = [list(_decode("json", frame)) for frame in before]
        assert errors == [["error"]] * (len(frames) - 1)  # each invalid frame but the last
        assert closed.code == code
        if reason is not None:
            assert closed.reason == reason
    room = await server.room()
    assert await room.wait_closes(1) == [_server_close_code(transport, code)]


def _server_close_code(transport: Transport, code: int) -> int:
    """The code ``on_close`` sees when the server closes with ``code`` for bad input.

    Hypercorn refuses a message over its ``websocket_max_message_size`` (which
    `trio_rooms.hypercorn_config` sets to ``max_message_size``) itself, with 1009, and
    then reports the end of a connection the app did not close as 1006.
    """
    return 1006 if transport == "hypercorn" and code == 1009 else code


async def test_shutdown_flushes_what_was_sent_then_closes_with_1001(
    open_other: OpenClient, transport: Transport
) -> None:
    """Leaving open_rooms delivers every broadcast made before it, then the close with 1001."""
    count = 100
    # The client outlives the rooms: it reads what their shutdown sends.
    async with trio.open_nursery() as server, AsyncExitStack() as clients:
        async with trio_rooms.open_rooms(ProbeRoom, config=CONFIG) as rooms:
            port = await start_server(server, transport, rooms)
            client = await clients.enter_async_context(open_other(Server(rooms, port).url()))
            await _echo(client, "admitted")
            room = await rooms.get(ROOM)
            for n in range(count):
                room.note(n)
        frames, closed = await _until_closed(client)
        server.cancel_scope.cancel()
    assert [_decode("json", frame)["n"] for frame in frames] == list(range(count))
    assert closed.code == 1001
    assert room.closes == [1001]


async def test_a_token_resumes_the_session_with_what_it_missed(
    server: Server, open_other: OpenClient
) -> None:
    """?resume=<token>&seen=N brings back the session's id and data, then the frames it
    missed in order, then live ones."""
    async with open_other(server.url("resume=&seen=0&name=ann")) as client:
        first = await _session_frame(client)
        assert first == {
            "id": first["id"],
            "token": first["token"],
            "resumed": False,
            "replayed": 0,
        }
        await _echo(client, "one", "ann")
        room = await server.room()
        room.note(0)
        assert _decode("json", await client.receive())["n"] == 0
        await client.close(1000, "")
        assert (await _until_closed(client))[1].code == 1000
    await room.wait_closes(1)
    room.note(1)
    room.note(2)
    async with open_other(server.url(f"resume={first['token']}&seen=2")) as client:
        second = await _session_frame(client)
        assert second == {
            "id": first["id"],
            "token": second["token"],
            "resumed": True,
            "replayed": 2,
        }
        assert second["token"] != first["token"]
        assert [_decode("json", await client.receive())["n"] for _ in range(2)] == [1, 2]
        room.note(3)
        assert _decode("json", await client.receive())["n"] == 3
        await _echo(client, "two", "ann")  # the data came back with it


async def test_a_resume_from_a_second_connection_closes_the_first_with_4001(
    server: Server, open_other: OpenClient
) -> None:
    """The token used while its session is still connected moves the session: the first
    connection is closed with 4001, the second goes on with its data."""
    async with open_other(server.url("resume=&name=bea")) as first:
        token = (await _session_frame(first))["token"]
        async with open_other(server.url(f"resume={token}&seen=0")) as second:
            assert (await _session_frame(second))["resumed"] is True
            assert await _until_closed(first) == ([], Closed(4001, "session resumed elsewhere"))
            await _echo(second, "still here", "bea")


#: Sessions park at once (the keepalive sweep runs every quarter of ``park_after``).
PARKING = attrs.evolve(CONFIG, park_after=0.02)


@pytest.mark.parametrize("probe_config", [PARKING])
@pytest.mark.embedded_only("hypercorn owns its connections' tasks: they never park")
async def test_a_parked_session_gets_broadcasts_and_wakes_for_its_client(
    server: Server, open_other: OpenClient
) -> None:
    """A silent session parks; a broadcast still reaches its client, whose next message
    wakes it, and whose close ends it with the client's code."""
    async with open_other(server.url()) as client:
        parks = await wait_parked(server.rooms, 1, 1)
        room = await server.room()
        room.note(1)
        assert _decode("json", await client.receive())["n"] == 1
        await _echo(client, "awake")
        await wait_parked(server.rooms, 1, parks + 1)
        await client.close(4000, "parked")
        assert await _until_closed(client) == ([], Closed(4000, "parked"))
    assert await room.wait_closes(1) == [4000]


@pytest.mark.parametrize("probe_config", [PARKING])
@pytest.mark.parametrize("open_other", ["websockets", "node"], indirect=True)
@pytest.mark.embedded_only("hypercorn owns its connections' tasks: they never park")
async def test_a_parked_session_answers_its_client_ping(
    server: Server, open_other: OpenClient
) -> None:
    """A client's ping to a parked session gets its pong; the session stays usable."""
    async with open_other(server.url()) as client:
        await wait_parked(server.rooms, 1, 1)
        await client.ping(b"parked?")
        await _echo(client, "after the pong")
