"""The demo's static-file HTTP server over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import attrs
import h11
import pytest
import trio

from trio_rooms.demo._http import serve_static
from trio_rooms.demo.app import STATIC_DIR


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


async def test_the_page_is_served_at_the_root(http_port: int) -> None:
    """GET / is index.html, with a content security policy."""
    reply = await request(http_port, "/")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.body == (STATIC_DIR / "index.html").read_bytes()
    assert b'<script src="/static/chat.js"' in reply.body
    assert "default-src 'self'" in reply.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("style.css", "text/css; charset=utf-8"),
        ("chat.js", "text/javascript; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
    ],
)
async def test_static_files_are_served_with_their_type(
    http_port: int, name: str, content_type: str
) -> None:
    """GET /static/<file> is the file from the package's static folder."""
    reply = await request(http_port, f"/static/{name}")
    assert reply.status == 200
    assert reply.headers["content-type"] == content_type
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.body == (STATIC_DIR / name).read_bytes()


async def test_config_names_the_websocket_port(http_port: int, ws_port: int) -> None:
    """GET /config.json tells the page where the WebSocket server listens."""
    reply = await request(http_port, "/config.json?v=1")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert json.loads(reply.body) == {"wsPort": ws_port}


async def test_head_has_the_headers_and_no_body(http_port: int) -> None:
    """HEAD / answers like GET / without the body."""
    reply = await request(http_port, "/", method="HEAD")
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
    ],
)
async def test_anything_else_is_404(http_port: int, target: str) -> None:
    """Traversal attempts, escapes, subpaths and unknown paths all get 404."""
    reply = await request(http_port, target)
    assert reply.status == 404
    assert reply.body == b"Not Found"


async def test_other_methods_are_405(http_port: int) -> None:
    """Only GET and HEAD are served."""
    reply = await request(http_port, "/", method="POST", body=b"x=1")
    assert reply.status == 405


async def test_a_symlink_out_of_the_folder_is_404(tmp_path: Path, nursery: trio.Nursery) -> None:
    """A symlink in the static folder that leads outside it is not followed."""
    static = tmp_path / "static"
    static.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (static / "ok.txt").write_text("fine")
    (static / "leak.txt").symlink_to(tmp_path / "secret.txt")
    port: int = await nursery.start(serve_static, static, "127.0.0.1", 0)
    assert (await request(port, "/static/ok.txt")).body == b"fine"
    assert (await request(port, "/static/leak.txt")).status == 404


async def test_requests_are_bounded_in_size(nursery: trio.Nursery) -> None:
    """Too long a head gets 431 and too long a body 413; the connection is then closed."""
    serve = partial(serve_static, max_request_size=1024)
    port: int = await nursery.start(serve, STATIC_DIR, "127.0.0.1", 0)
    long_target = "/static/" + "a" * 2000
    assert (await request(port, long_target)).status == 431
    reply = await request(port, "/", method="POST", body=b"x" * 4096)
    assert reply.status == 413
    assert reply.headers["connection"] == "close"


async def test_a_silent_client_is_disconnected(nursery: trio.Nursery) -> None:
    """A client that does not send its request within request_timeout is closed."""
    serve = partial(serve_static, request_timeout=0.05)
    port: int = await nursery.start(serve, STATIC_DIR, "127.0.0.1", 0)
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        with trio.fail_after(5):
            assert await stream.receive_some(1024) == b""


async def test_a_connection_serves_several_requests(http_port: int) -> None:
    """Keep-alive: two requests on one connection get two replies."""
    async with await trio.open_tcp_stream("127.0.0.1", http_port) as stream:
        conn = h11.Connection(h11.CLIENT)
        for target in ("/config.json", "/static/style.css"):
            request = h11.Request(method="GET", target=target, headers=[("host", "x")])
            await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
            reply = await _receive_reply(conn, stream)
            assert reply is not None
            assert reply.status == 200
            conn.start_next_cycle()
