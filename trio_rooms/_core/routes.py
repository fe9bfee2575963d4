"""HTTP routes on rooms: the ``route`` decorators, ``HttpRequest`` and ``Response``.

A route is a method of a `Room` subclass, declared with ``@route.get(path)`` (or
``post``, ``put``, ``patch``, ``delete``)::

    class ChatRoom(Room[ChatSession]):
        @route.post("/info")
        async def info(self, request: HttpRequest) -> RoomInfo: ...

        @route.post("/broadcast")
        async def broadcast_admin(self, request: HttpRequest, body: BroadcastBody) -> Ok: ...

The decorators only mark the function; the route table of a room class is built
from its methods (subclasses inherit and override routes by method name) the first
time it is needed, and cached. Transports serve it at ``{prefix}/{room}{path}``.
"""

from __future__ import annotations

import inspect
import logging
import re
import typing
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast, final, overload
from weakref import WeakKeyDictionary

import attrs
import orjson
from attrs import AttrsInstance

from .._errors import DecodeError
from ..codec._record import JsonRecords
from .request import find_header, parse_query

if typing.TYPE_CHECKING:
    # attrs' own AttrsInstance is an empty Protocol for pyright (everything matches);
    # pyright gives attrs classes a synthesized ``__dataclass_fields__``, so this is
    # the bound that rejects a plain class statically. At runtime only attrs classes
    # are accepted.
    from _typeshed import DataclassInstance

    from .room import Room

__all__ = [
    "HttpRequest",
    "Response",
    "RouteDecorator",
    "RouteMatch",
    "Router",
    "call_route",
    "is_json_media_type",
    "match_route",
    "route",
    "route_table",
    "unsupported_body",
]

_logger = logging.getLogger("trio_rooms")

#: The attribute the decorators set on a handler: its ``(method, path)`` pairs.
_ROUTES_ATTR: Final = "__trio_rooms_routes__"

#: ``application/json`` and the structured ``+json`` types (RFC 6839), in lower case.
_JSON_MEDIA_TYPE: Final = re.compile(r"application/(?:json|[a-z0-9][a-z0-9!#$&^_.+-]*\+json)")

#: A header name: an RFC 9110 5.1 token.
_FIELD_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A header value (RFC 9110 5.5, as h11 checks it): no CR, LF, NUL or other control
#: character, nothing past latin-1, no whitespace at either end.
_FIELD_VALUE: Final = re.compile(
    r"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
)

RoomT = TypeVar("RoomT", bound="Room[Any]")
BodyT = TypeVar("BodyT", bound="DataclassInstance")
ResultT = TypeVar("ResultT", bound="DataclassInstance | Response")


@final
@attrs.frozen(kw_only=True)
class HttpRequest:
    """An HTTP request to a room route, as the server received it.

    Header names are lower-case; values are decoded as latin-1, as HTTP/1.1 has it.
    """

    #: The room the request is for (already validated).
    room: str
    #: The request method, upper-case (``"POST"``).
    method: str
    #: The request path, without the query string.
    path: str
    #: The raw query string, without ``?``.
    query_string: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    #: The whole request body.
    body: bytes = b""
    #: ``(host, port)`` of the peer, when the transport knows it.
    client: tuple[str, int] | None = None

    @property
    def query(self) -> Mapping[str, str]:
        """The query parameters; for a repeated name, the last value wins."""
        return parse_query(self.query_string)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None.

        Repeated headers are joined by ``", "``.
        """
        return find_header(self.headers, name)


@final
@attrs.frozen
class Response:
    """An HTTP response a route returns as it is (an attrs instance becomes JSON instead).

    ::

        return Response(404, (("content-type", "text/plain"),), b"no such user")
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def text(cls, status: int, body: str) -> Response:
        """A ``text/plain`` UTF-8 response."""
        return cls(status, (("content-type", "text/plain; charset=utf-8"),), body.encode())

    @classmethod
    def json_error(cls, status: int, reason: str) -> Response:
        """The library's error body, ``{"error": reason}``, as JSON."""
        return cls(status, (("content-type", "application/json"),), orjson.dumps({"error": reason}))


@final
class RouteDecorator:
    """Marks a room method as the handler of one method and path; see `route`.

    The handler is checked by the type checker: ``async def (self, request) -> R`` or
    ``async def (self, request, body: B) -> R``, where ``B`` is an attrs class (the
    JSON request body, decoded strictly) and ``R`` an attrs instance (sent as JSON)
    or a `Response`.
    """

    __slots__ = ("_method", "_path")

    def __init__(self, method: str, path: str) -> None:
        if not path.startswith("/") or path == "/websocket":
            raise ValueError(f"a route path starts with '/' and is not '/websocket', got {path!r}")
        self._method = method
        self._path = path

    @overload
    def __call__(
        self, handler: Callable[[RoomT, HttpRequest], Awaitable[ResultT]]
    ) -> Callable[[RoomT, HttpRequest], Awaitable[ResultT]]: ...

    @overload
    def __call__(
        self, handler: Callable[[RoomT, HttpRequest, BodyT], Awaitable[ResultT]]
    ) -> Callable[[RoomT, HttpRequest, BodyT], Awaitable[ResultT]]: ...

    def __call__(
        self, handler: Callable[..., Awaitable[object]]
    ) -> Callable[..., Awaitable[object]]:
        """Mark ``handler`` and return it unchanged."""
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"route handler {handler.__qualname__} must be an async def")
        routes: tuple[tuple[str, str], ...] = getattr(handler, _ROUTES_ATTR, ())
        setattr(handler, _ROUTES_ATTR, (*routes, (self._method, self._path)))
        return handler


@final
class Router:
    """The route decorators, one per HTTP method: ``@route.get("/path")``."""

    __slots__ = ()

    def get(self, path: str) -> RouteDecorator:
        """Handle ``GET {prefix}/{room}{path}``."""
        return RouteDecorator("GET", path)

    def post(self, path: str) -> RouteDecorator:
        """Handle ``POST {prefix}/{room}{path}``."""
        return RouteDecorator("POST", path)

    def put(self, path: str) -> RouteDecorator:
        """Handle ``PUT {prefix}/{room}{path}``."""
        return RouteDecorator("PUT", path)

    def patch(self, path: str) -> RouteDecorator:
        """Handle ``PATCH {prefix}/{room}{path}``."""
        return RouteDecorator("PATCH", path)

    def delete(self, path: str) -> RouteDecorator:
        """Handle ``DELETE {prefix}/{room}{path}``."""
        return RouteDecorator("DELETE", path)


#: The route decorators: ``@route.get("/info")``, ``@route.post("/broadcast")``, ...
route: Final = Router()


@final
@attrs.frozen
class _Endpoint:
    name: str
    body_type: type[object] | None


@final
@attrs.frozen
class RouteMatch:
    """The outcome of matching a request against a room class's routes.

    ``endpoint`` is set when the method and path match; otherwise ``response`` is the
    404 or 405 to send.
    """

    endpoint: _Endpoint | None
    response: Response | None


_tables: WeakKeyDictionary[type, Mapping[str, Mapping[str, _Endpoint]]] = WeakKeyDictionary()


def route_table(cls: type) -> Mapping[str, Mapping[str, _Endpoint]]:
    """The routes of room class ``cls``: path, then method, to its handler.

    Built on first use and cached.

    Raises:
        TypeError: a handler takes parameters other than ``(self, request[, body])``,
            its body type is not an attrs class the wire can carry, or two handlers
            claim one method and path.
    """
    table = _tables.get(cls)
    if table is None:
        table = _tables[cls] = _build_table(cls)
    return table


def _build_table(cls: type) -> Mapping[str, Mapping[str, _Endpoint]]:
    # By attribute name, base classes first: an override replaces (or removes) routes.
    handlers: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        handlers.update(vars(klass))
    table: dict[str, dict[str, _Endpoint]] = {}
    for name, value in handlers.items():
        routes: tuple[tuple[str, str], ...] = getattr(value, _ROUTES_ATTR, ())
        if not routes:
            continue
        endpoint = _Endpoint(name, _body_type(cls, name, value))
        for method, path in routes:
            methods = table.setdefault(path, {})
            if method in methods:
                raise TypeError(
                    f"{cls.__qualname__}: {methods[method].name} and {name} both handle "
                    f"{method} {path}"
                )
            methods[method] = endpoint
    return MappingProxyType({path: MappingProxyType(methods) for path, methods in table.items()})


def _body_type(cls: type, name: str, handler: object) -> type[object] | None:
    assert callable(handler)
    where = f"{cls.__qualname__}.{name}"
    parameters = list(inspect.signature(handler).parameters.values())
    if len(parameters) not in (2, 3) or any(
        p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters
    ):
        raise TypeError(f"route handler {where} must take (self, request) or (self, request, body)")
    if len(parameters) == 2:
        return None
    hints = typing.get_type_hints(handler)
    body_type: object = hints.get(parameters[2].name)
    if not (isinstance(body_type, type) and attrs.has(body_type)):
        raise TypeError(
            f"route handler {where}: the body must be an attrs class, got {body_type!r}"
        )
    return body_type


def match_route(cls: type, method: str, path: str) -> RouteMatch:
    """Find the handler of ``method path`` among the routes of room class ``cls``.

    No room is needed (nor created): an unknown path gets 404, a known path with
    another method 405 with ``Allow``.
    """
    methods = route_table(cls).get(path)
    if methods is None:
        return RouteMatch(None, Response.text(404, "Not Found"))
    endpoint = methods.get(method)
    if endpoint is None:
        allow = ", ".join(sorted(methods))
        response = Response(
            405,
            (("allow", allow), ("content-type", "text/plain; charset=utf-8")),
            b"Method Not Allowed",
        )
        return RouteMatch(None, response)
    return RouteMatch(endpoint, None)


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names JSON: ``application/json`` or ``application/*+json``.

    Case-insensitive, parameters (``; charset=utf-8``) ignored; ``application/jsonx``
    or two types joined by a comma are not JSON.
    """
    if content_type is None:
        return False
    media_type = content_type.partition(";")[0].strip().lower()
    return _JSON_MEDIA_TYPE.fullmatch(media_type) is not None


def unsupported_body(endpoint: _Endpoint, request: HttpRequest) -> Response | None:
    """The 415 for a body that ``endpoint`` takes but that is not sent as JSON; else None.

    A browser sends ``text/plain``, form and multipart bodies (and a body without a
    type) to any site without asking it first (no CORS preflight): a route that
    decoded them as JSON could be driven from another site's page. Only a route
    that declares a body is concerned; a request without a body is left to the
    decoder (400), as before.
    """
    if endpoint.body_type is None or not request.body:
        return None
    if is_json_media_type(request.header("content-type")):
        return None
    return Response.json_error(415, "Unsupported Media Type: send the body as application/json")


async def call_route(
    room: Room[Any], endpoint: _Endpoint, request: HttpRequest, records: JsonRecords
) -> Response:
    """Run ``endpoint`` on ``room`` and turn its result into a `Response`.

    A body that does not decode gets 400 ``{"error": reason}``; a handler that raises
    is logged and gets 500.
    """
    handler: Callable[..., Awaitable[object]] = getattr(room, endpoint.name)
    where = f"route {request.method} {request.path} of room {room.name!r}"
    try:
        if endpoint.body_type is None:
            result = await handler(request)
        else:
            try:
                body: object = records.decode(endpoint.body_type, request.body)
            except DecodeError as exc:
                return Response.json_error(400, str(exc))
            result = await handler(request, body)
    except Exception:
        _logger.exception("%s failed", where)
        return Response.text(500, "Internal Server Error")
    if isinstance(result, Response):
        flaw = _unwritable(result)
        if flaw is None:
            return result
        # Often a client's own value echoed into a header: written as it is, its CR LF
        # would add the client's headers to the answer (response splitting).
        _logger.error("%s returned a response HTTP/1.1 cannot carry: %s", where, flaw)
        return Response.text(500, "Internal Server Error")
    if not attrs.has(type(result)):
        _logger.error(
            "%s returned %s: expected an attrs instance or a Response",
            where,
            type(result).__qualname__,
        )
        return Response.text(500, "Internal Server Error")
    try:
        payload = records.encode(_as_attrs(result))
    except (TypeError, ValueError):
        _logger.exception("%s returned a value that cannot be encoded", where)
        return Response.text(500, "Internal Server Error")
    return Response(200, (("content-type", "application/json"),), payload)


def _unwritable(response: Response) -> str | None:
    """What keeps ``response`` from being written as one HTTP/1.1 response; None if nothing.

    A final status (200 to 599), header names that are tokens, and values without
    control characters (CR, LF, NUL...) or characters past latin-1, which each
    transport would write as they are, or fail on.
    """
    status = response.status
    if type(status) is not int or not 200 <= status <= 599:
        return f"status {status!r:.50} is not a final status (200 to 599)"
    for name, value in response.headers:
        if not (isinstance(name, str) and _FIELD_NAME.fullmatch(name)):  # pyright: ignore[reportUnnecessaryIsInstance] - the app's value
            return f"header name {name!r:.100} is not a token"
        if not (isinstance(value, str) and _FIELD_VALUE.fullmatch(value)):  # pyright: ignore[reportUnnecessaryIsInstance] - the app's value
            return f"the value of header {name!r} is not a header value: {value!r:.100}"
    return None


def _as_attrs(value: object) -> AttrsInstance:
    return cast("AttrsInstance", value)  # checked with attrs.has by the caller
