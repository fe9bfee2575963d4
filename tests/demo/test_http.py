"""The demo's one port over real sockets on 127.0.0.1: page, static files and rooms."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import h11
import hypercorn.trio
import pytest
import trio

from trio_rooms import bind_asgi, hypercorn_config, open_rooms
from trio_rooms.demo._site import demo_app
from trio_rooms.demo.app import STATIC_DIR, ChatRoom

from ..sockets import connect_socket, handshake_request, read_http_response
from .client import connect


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def _receive_reply(conn: h11.Connection, stream: trio.SocketStream) -> Reply | None:
    """Read one response; None if the server closed the connection instead."""
    response: h11.Response | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            headers = {name.decode(): value.decode() for name, value in response.headers}
            return Reply(response.status_code, headers, body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def request(port: int, target: str, method: str = "GET", body: bytes = b"") -> Reply:
    """Send one request, with the raw ``target`` (no normalising), and read the reply."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        headers = [("host", "127.0.0.1"), ("connection", "close")]
        if body:
            headers.append(("content-length", str(len(body))))
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
        reply = await _receive_reply(conn, stream)
        assert reply is not None
        return reply


@asynccontextmanager
async def _site(static_dir: Path, *, keep_alive_timeout: float = 5.0) -> AsyncGenerator[int]:
    """The demo's app on ``static_dir`` under hypercorn while the block runs; its port."""
    async with trio.open_nursery() as nursery, open_rooms(ChatRoom) as rooms:
        config = hypercorn_config(rooms.config, "127.0.0.1:0")
        config.keep_alive_timeout = keep_alive_timeout
        app = demo_app(bind_asgi(rooms), static_dir)
        urls: list[str] = await nursery.start(hypercorn.trio.serve, app, config)
        port = urlsplit(urls[0]).port
        assert port is not None
        yield port
        nursery.cancel_scope.cancel()


async def test_the_page_is_served_at_the_root(demo_port: int) -> None:
    """GET / is index.html, with a content security policy."""
    reply = await request(demo_port, "/")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.body == (STATIC_DIR / "index.html").read_bytes()
    assert b'<script src="/static/chat.bundle.js"' in reply.body
    assert "default-src 'self'" in reply.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("style.css", "text/css; charset=utf-8"),
        ("chat.bundle.js", "text/javascript; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
    ],
)
async def test_static_files_are_served_with_their_type(
    demo_port: int, name: str, content_type: str
) -> None:
    """GET /static/<file> is the file from the package's static folder."""
    reply = await request(demo_port, f"/static/{name}?v=1")
    assert reply.status == 200
    assert reply.headers["content-type"] == content_type
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.body == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("scheme", ["http", "HTTP"])
async def test_an_absolute_form_target_is_served_by_the_path_it_names(
    demo_port: int, scheme: str
) -> None:
    """``GET http://host/static/x`` (RFC 9112 3.2.2) is the file, ``http://host`` the
    page, a traversal still 404; the rooms' paths go to the rooms, as they route them."""
    origin = f"{scheme}://127.0.0.1:{demo_port}"
    reply = await request(demo_port, f"{origin}/static/style.css?v=1")
    assert (reply.status, reply.body) == (200, (STATIC_DIR / "style.css").read_bytes())
    for page in (origin, f"{origin}/", f"{origin}?v=1"):
        reply = await request(demo_port, page)
        assert (reply.status, reply.body) == (200, (STATIC_DIR / "index.html").read_bytes())
    for refused in (f"{origin}/static/../app.py", f"{origin}/static/%2e%2e/app.py"):
        assert (await request(demo_port, refused)).status == 404, refused
    reply = await request(demo_port, f"{origin}/rooms/lobby/websocket")
    assert (reply.status, reply.body) == (400, b"Expected websocket")


async def test_the_rooms_are_on_the_same_port(demo_port: int) -> None:
    """The page's port also serves the rooms: a WebSocket joins, a plain GET gets 400."""
    async with connect(demo_port, "lobby", "alice") as alice:
        members, _ = await alice.join()
        assert [member["name"] for member in members["members"]] == ["alice"]
    reply = await request(demo_port, "/rooms/lobby/websocket")
    assert (reply.status, reply.body) == (400, b"Expected websocket")


async def test_head_has_the_headers_and_no_body(demo_port: int) -> None:
    """HEAD / answers like GET / without the body."""
    reply = await request(demo_port, "/", method="HEAD")
    assert reply.status == 200
    assert int(reply.headers["content-length"]) == len((STATIC_DIR / "index.html").read_bytes())
    assert reply.body == b""


@pytest.mark.parametrize(
    "target",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/%2E%2E/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e%2fapp.py",
        "/static/..%5capp.py",
        "/static/..",
        "/static/.",
        "/static/",
        "/static//etc/passwd",
        "/static/./style.css",
        "/static/style.css/",
        "/static/nope.css",
        "/static/%73tyle.css",
        "/../trio_rooms/demo/app.py",
        "/app.py",
        "/index.html",
        "/static",
        "/config.json",
    ],
)
async def test_anything_else_is_404(demo_port: int, target: str) -> None:
    """Traversal attempts, escapes, subpaths and unknown paths all get 404."""
    reply = await request(demo_port, target)
    assert reply.status == 404
    assert reply.body == b"Not Found"


async def test_other_methods_are_405(demo_port: int) -> None:
    """Only GET and HEAD are served on the page's paths."""
    reply = await request(demo_port, "/", method="POST", body=b"x=1")
    assert reply.status == 405
    reply = await request(demo_port, "/static/style.css", method="DELETE")
    assert reply.status == 405


async def test_a_symlink_out_of_the_folder_is_404(tmp_path: Path) -> None:
    """A symlink in the static folder that leads outside it is not followed."""
    static = tmp_path / "static"
    static.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (static / "ok.txt").write_text("fine")
    (static / "leak.txt").symlink_to(tmp_path / "secret.txt")
    async with _site(static) as port:
        assert (await request(port, "/static/ok.txt")).body == b"fine"
        assert (await request(port, "/static/leak.txt")).status == 404


async def test_requests_are_bounded_in_size(demo_port: int) -> None:
    """Too long a request head is refused by hypercorn; the connection is then closed."""
    long_target = "/static/" + "a" * 70000
    reply = await request(demo_port, long_target)
    assert 400 <= reply.status < 500
    assert reply.headers.get("connection", "close") == "close"


async def test_a_silent_client_is_disconnected() -> None:
    """A client that sends no request within hypercorn's keep-alive timeout is closed."""
    async with (
        _site(STATIC_DIR, keep_alive_timeout=0.05) as port,
        await trio.open_tcp_stream("127.0.0.1", port) as stream,
    ):
        with trio.fail_after(5):
            assert await stream.receive_some(1024) == b""


async def test_a_connection_serves_several_requests(demo_port: int) -> None:
    """Keep-alive: two requests on one connection get two replies."""
    async with await trio.open_tcp_stream("127.0.0.1", demo_port) as stream:
        conn = h11.Connection(h11.CLIENT)
        for target in ("/", "/static/style.css"):
            request = h11.Request(method="GET", target=target, headers=[("host", "x")])
            await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
            reply = await _receive_reply(conn, stream)
            assert reply is not None
            assert reply.status == 200
            conn.start_next_cycle()


async def test_the_demo_lets_browsers_in_only_from_its_own_page(demo_port: int) -> None:
    """The origin allow-list is on: a page elsewhere gets 403 before any upgrade."""
    path = "/rooms/lobby/websocket"
    for origin, status in (
        ("https://evil.example", 403),
        (f"http://127.0.0.1:{demo_port}", 101),
        (f"http://localhost:{demo_port}", 101),
    ):
        stream = await connect_socket(demo_port)
        async with stream:
            await stream.send_all(handshake_request(path, extra=f"Origin: {origin}\r\n"))
            assert (await read_http_response(stream))[0] == status, origin
