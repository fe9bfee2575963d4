"""``serve_http``: one HTTP request to a room's routes, the same on every transport.

A transport parses the request head and hands over a way to receive the body; this
checks the target, the origin and the caps, reads the body within its bounds, finds
the route (answering 404 and 405 before any room exists when it can), creates the
room if needed and runs the handler (`answer_route`); with a cluster, a room another
node owns is answered by that node. The transport writes the `Response` back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, final

import attrs
import trio

from .._errors import BackplaneError, OwnedElsewhereError, RoomNameError
from .config import RoomsConfig, room_name_in_path
from .ownership import OwnerLost
from .registry import OWNER_RETRY, RoomRegistry
from .request import find_header
from .rooms import Rooms, registry_of
from .route_answer import answer_route
from .routes import HttpRequest, Response, match_route, unsupported_body
from .routing import HttpRejection, split_room_path

__all__ = ["HttpHead", "ReceiveBody", "serve_http"]


#: Safe methods (RFC 9110 9.2.1): asked again of a new owner if the first one was lost.
_IDEMPOTENT: Final = frozenset({"GET", "HEAD"})

#: The next piece of the request body and whether more follows; None if the client left.
ReceiveBody = Callable[[], Awaitable[tuple[bytes, bool] | None]]


@final
@attrs.frozen
class HttpHead:
    """What a transport parsed of a request: everything but its body."""

    #: Upper case: ``"POST"``.
    method: str
    #: The target as the client sent it (percent-encoded), with its query.
    target: str
    #: Lower-case names, in the order received.
    headers: tuple[tuple[str, str], ...]
    client: tuple[str, int] | None


async def serve_http(
    rooms: Rooms[Any], head: HttpHead, receive_body: ReceiveBody
) -> Response | None:
    """The response to the request ``head`` starts; None if the client left first.

    The caller counts the request against the connection caps while this runs (the
    embedded server counts its connection from the accept). A body over
    ``max_message_size`` gets 413 and one not complete within ``request_timeout`` 408;
    both end the connection (their responses say ``connection: close``).
    """
    registry = registry_of(rooms)
    config = registry.config
    path, _, query_string = head.target.partition("?")
    split = split_room_path(config.prefix, path)
    if split is None:
        return Response.text(404, "Not Found")
    name, route_path = split
    if route_path == "/websocket":
        return Response.text(400, "Expected websocket")
    try:
        name = room_name_in_path(name)
    except RoomNameError as exc:
        return Response.text(400, str(exc))
    path = config.prefix + "/" + name + route_path  # its normal form: decoded
    try:
        registry.check_client(find_header(head.headers, "origin"), head.client)
    except HttpRejection as rejection:
        return Response.text(rejection.status, rejection.body)
    endpoint = None
    room_class = registry.room_class
    if room_class is not None:  # answer 404 and 405 without creating the room
        match = match_route(room_class, head.method, route_path)
        if match.response is not None:
            return match.response
        endpoint = match.endpoint
    body = await _read_body(receive_body, head.headers, config)
    if body is None or isinstance(body, Response):
        return body
    request = HttpRequest(
        room=name,
        method=head.method,
        path=path,
        query_string=query_string,
        headers=head.headers,
        body=body,
        client=head.client,
    )
    if endpoint is not None and (refusal := unsupported_body(endpoint, request)):
        return refusal
    return await _answer(registry, request, route_path)


async def _answer(registry: RoomRegistry, request: HttpRequest, path: str) -> Response:
    """The route's answer, here or, with a cluster, from the node that owns the room.

    While the room has no owner that answers (its owner died and its lease has not
    lapsed yet), this node tries to take it every `OWNER_RETRY` seconds, for up to
    ``handshake_timeout``, as a connection's serving does; then 503. An owner lost
    while it handled the request may have run it: a GET or HEAD (safe) is asked
    once more of the next owner, any other method gets 503 with ``Retry-After``, as a
    reverse proxy does not resend a request it may have delivered.
    """
    deadline = trio.current_time() + registry.config.handshake_timeout
    cluster = registry.cluster
    retried = False
    while True:
        try:
            return await answer_route(
                registry.get, registry.room_class, registry.records, request, path
            )
        except (OwnedElsewhereError, BackplaneError) as exc:
            if cluster is not None and isinstance(exc, OwnedElsewhereError):
                response = await cluster.relay_request(request, registry.config)
                if isinstance(response, OwnerLost):
                    if retried or request.method not in _IDEMPOTENT:
                        return _unavailable("the room's node was lost during the request")
                    retried = True
                    deadline = trio.current_time() + registry.config.handshake_timeout
                elif response is not None:
                    return response
        if trio.current_time() >= deadline:
            return _unavailable("the room has no owner that answers")
        await trio.sleep(OWNER_RETRY)  # sync-ok: its lease lapses on Redis's clock


def _unavailable(why: str) -> Response:
    """503 for a room without a live owner: the next one takes it within a lease's TTL,
    which has mostly passed by the time a loss is found (the owner's silence)."""
    headers = (("content-type", "text/plain; charset=utf-8"), ("retry-after", "1"))
    return Response(503, headers, f"Service Unavailable: {why}".encode())


async def _read_body(
    receive_body: ReceiveBody, headers: tuple[tuple[str, str], ...], config: RoomsConfig
) -> bytes | Response | None:
    """The request body, read as it arrives; None if the client left.

    A body over ``max_message_size`` (announced, or as it arrives) gets 413, one not
    complete within ``request_timeout`` 408: nothing past the bound is kept.
    """
    limit = config.max_message_size
    too_large = _closing(413, f"Payload Too Large: the limit is {limit} bytes")
    announced = find_header(headers, "content-length")
    if announced is not None and _over(announced.strip(), limit):
        return too_large
    # One buffer, not a list of the pieces: a chunked body of 1-byte chunks would cost
    # an object (about 40 bytes) per byte of it.
    body = bytearray()
    with trio.move_on_after(config.request_timeout):
        while True:
            received = await receive_body()
            if received is None:
                return None
            chunk, more = received
            if len(body) + len(chunk) > limit:
                return too_large
            if not more and not body:
                return chunk  # the whole body in one piece: no copy
            body += chunk
            if not more:
                return bytes(body)
    return _closing(
        408, f"Request Timeout: the body must arrive within {config.request_timeout:g} s"
    )


def _over(content_length: str, limit: int) -> bool:
    """Whether a ``Content-Length`` announces more than ``limit`` bytes (h11 checked its form)."""
    # int() of thousands of digits raises ValueError; such a length is over anyway.
    return content_length.isdigit() and (
        len(content_length) > len(str(limit)) or int(content_length) > limit
    )


def _closing(status: int, reason: str) -> Response:
    """A plain-text error that ends the connection: its request was not read to the end."""
    headers = (("content-type", "text/plain; charset=utf-8"), ("connection", "close"))
    return Response(status, headers, reason.encode())
