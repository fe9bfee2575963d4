"""``Request``: a client message that declares its reply, and ``replies``, its handler.

::

    @attrs.frozen
    class GetScore(Request[Score]):
        player: str

    class GameSession(Session[GameData, Score | Chat, GetScore | SendChat]):
        @replies(GetScore)
        async def get_score(self, request: GetScore) -> Score:
            return Score(self.room.scores[request.player])

pyright checks the handler against the declaration: its parameter takes the request
class and its return is the request's reply type. On the client,
``await client.request(GetScore("ann"), timeout=5)`` is a ``Score``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final, Generic, TypeVar, cast, final

from ._core.typeargs import is_concrete, resolve_type_args, union_members
from ._message import Message

__all__ = ["Request", "handled_request", "replies"]

RetT = TypeVar("RetT")
RetT_co = TypeVar("RetT_co", covariant=True)
SelfT = TypeVar("SelfT")
ReqT = TypeVar("ReqT", bound="Request[Any]")
ReqT_co = TypeVar("ReqT_co", bound="Request[Any]", covariant=True)

#: The function attribute `replies` sets: the request class it answers.
_HANDLES: Final = "_trio_rooms_handles"


class Request(Message, Generic[RetT_co]):
    """A client message that is answered by one reply of type ``RetT_co``.

    Subclass it with the reply type: ``class GetScore(Request[Score])`` (a union such
    as ``Request[Score | NotFound]`` is fine). The reply classes must be server
    messages of every session that takes the request; the session answers it with a
    handler decorated with `replies`. Sent with ``RoomClient.send`` it is no request:
    the server takes it as invalid input.
    """

    __slots__ = ()
    #: The reply classes, read from the type argument when the class is created.
    reply_classes: ClassVar[tuple[type[Message], ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        args = resolve_type_args(cls, Request)
        if args is None or not is_concrete(args):
            return  # a generic intermediate class
        members = union_members(args[0])
        for member in members:
            if not (isinstance(member, type) and issubclass(member, Message)):
                raise TypeError(
                    f"{cls.__qualname__}: a reply must be a trio_rooms.Message class, "
                    f"got {member!r}"
                )
        cls.reply_classes = cast("tuple[type[Message], ...]", members)


@final
class _Replies(Generic[ReqT_co]):
    """What ``replies(GetScore)`` returns: the decorator, typed by the request class."""

    __slots__ = ("_request",)

    def __init__(self, request: type[ReqT_co]) -> None:
        self._request = request

    # ``self`` is matched against ``_Replies[Request[RetT]]``: that is what ties the
    # handler's return type to the request's declared reply.
    def __call__(
        self: _Replies[Request[RetT]], handler: Callable[[SelfT, ReqT_co], Awaitable[RetT]]
    ) -> Callable[[SelfT, ReqT_co], Awaitable[RetT]]:
        setattr(handler, _HANDLES, self._request)
        return handler


def replies(request: type[ReqT], /) -> _Replies[ReqT]:
    """Make a session method the handler of ``request``: it returns the reply.

    The method runs under the room's gate like any message handler, but requests do
    not wait for each other: a handler that lets the gate go (``room.unlocked()``)
    lets the session's next messages and requests in, so replies may come out of
    order. A handler that raises `trio_rooms.RequestError` refuses the request with
    its reason; any other exception answers ``"internal error"`` and goes to
    ``on_error``. The session stays open either way.

    Raises:
        TypeError: ``request`` is not a `Request` class (when the session class is
            created: the request is not among its client messages, its reply is not
            among its server messages, or it has two handlers).
    """
    if not (isinstance(request, type) and issubclass(request, Request)):  # pyright: ignore[reportUnnecessaryIsInstance] - untyped callers
        raise TypeError(f"replies() takes a Request class, got {request!r}")
    return _Replies(request)


def handled_request(attribute: object) -> type[Request[Any]] | None:
    """The request class ``attribute`` (a class attribute) answers, if it is a handler."""
    request: object = getattr(attribute, _HANDLES, None)
    if isinstance(request, type) and issubclass(request, Request):
        return cast("type[Request[Any]]", request)
    return None
