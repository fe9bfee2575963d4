"""The ASGI http scope: a room's HTTP route request, answered by the core's `serve_http`."""

from __future__ import annotations

from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope

from .._core.http_serving import HttpHead, serve_http
from .._core.rooms import Rooms
from .._core.routes import Response
from .._core.serving import counted
from ._asgi_scope import request_headers, request_target
from ._framing import FRAMING_HEADERS

__all__ = ["serve_http_scope"]


async def serve_http_scope(
    rooms: Rooms[Any] | None,
    scope: HTTPScope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
) -> None:
    """Answer the request of ``scope`` for ``rooms``; 503 while they are not running."""
    if rooms is None:
        await _send_response(
            send, Response.text(503, "Service Unavailable: the rooms are not running")
        )
        return
    client = scope["client"]
    head = HttpHead(
        method=scope["method"].upper(),
        target=request_target(scope),
        headers=request_headers(scope["headers"]),
        client=client,
    )

    async def receive_body() -> tuple[bytes, bool] | None:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client left
        return message["body"], message["more_body"]

    # A route request holds a slot like a WebSocket does, until its response is out.
    with counted(rooms, client):
        # Hypercorn closes a connection whose request body is still coming when the
        # response ends: a 408 or 413 ends its connection, as it says.
        response = await serve_http(rooms, head, receive_body)
        if response is not None:
            await _send_response(send, response)


async def _send_response(send: ASGISendCallable, response: Response) -> None:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
        if name.lower() not in FRAMING_HEADERS  # the length below is the framing
    ]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})
