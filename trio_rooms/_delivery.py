"""Delivery policies: what a full outbound queue does with a message.

A session's outbound queue is bounded (``RoomsConfig.outbound_max_messages`` and
``outbound_max_bytes``). What happens to a message that finds it full is the message's
policy, declared by its class (``delivery = DropOldest()``, a plain class attribute like
``tag``) or given per send (``send(msg, policy=...)``, ``broadcast(..., policy=...)``):

- `Disconnect` (the default): the session is a slow consumer and is closed with 1008,
  once its queue has stayed full for ``slow_consumer_timeout`` (at once past the bytes).
- `DropOldest`: the oldest queued message of this policy is dropped to make room (the
  new one itself when none is queued); the session stays.
- `Coalesce`: a queued message with the same key is dropped, so that the queue holds
  only the newest message per key (the latest position of each entity, say); the new
  message takes its place at the end of the queue, so everything still arrives in the
  order it was sent.

This module imports nothing else of the package: `Message` declares its default here.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final, TypeAlias, final

import attrs

__all__ = [
    "COALESCE",
    "DISCONNECT",
    "DROP_OLDEST",
    "Coalesce",
    "DeliveryPolicy",
    "Disconnect",
    "DropOldest",
    "PolicySpec",
    "frame_policy",
    "from_spec",
    "policy_code",
    "policy_spec",
]

#: How a `Frame` carries its policy (an int: the fan-out loop only tests it for zero).
DISCONNECT: Final = 0
DROP_OLDEST: Final = 1
COALESCE: Final = 2


@final
@attrs.frozen
class Disconnect:
    """Close a session whose queue stays full with 1008 (slow consumer): the default."""


@final
@attrs.frozen
class DropOldest:
    """Drop the oldest queued message of this policy when the queue is full, and go on."""


def _names(value: tuple[str, ...]) -> tuple[str, ...]:
    for name in value:
        if not isinstance(name, str) or not name:  # pyright: ignore[reportUnnecessaryIsInstance] - untyped callers
            raise TypeError(f"Coalesce takes attribute names (non-empty str), got {name!r}")
    return value


@final
@attrs.frozen(init=False)
class Coalesce:
    """Keep only the newest queued message per key; an older one with its key is dropped.

    The key is the message's class with the values of the attributes ``names`` (fields,
    or properties for a computed key), or ``key`` itself when given (per send)::

        @attrs.frozen
        class Moved(Message):
            delivery = trio_rooms.Coalesce("entity_id")  # the latest position per entity
            entity_id: str
            x: float

        room.broadcast(Score(...), policy=trio_rooms.Coalesce(key=team))  # per send

    With neither, every message of the class shares one key (the latest snapshot). A
    ``key`` must be a str, an int or None to cross nodes with a backplane.
    """

    names: tuple[str, ...]
    key: Hashable

    def __init__(self, *names: str, key: Hashable = None) -> None:
        if names and key is not None:
            raise TypeError("Coalesce takes attribute names or a key, not both")
        # Frozen: set as attrs' own __init__ would.
        object.__setattr__(self, "names", _names(names))
        object.__setattr__(self, "key", key)

    def key_of(self, message: object) -> Hashable:
        """The coalescing key of ``message`` under this policy.

        Raises:
            TypeError: ``message`` has no attribute of ``names``, or its key is not
                hashable.
        """
        if self.names:
            try:
                value: Hashable = tuple(getattr(message, name) for name in self.names)
            except AttributeError as exc:
                raise TypeError(
                    f"Coalesce{self.names!r}: {type(message).__qualname__} has no "
                    f"attribute {exc.name!r}"
                ) from exc
        else:
            value = self.key
        key = (type(message), value)
        try:
            hash(key)
        except TypeError as exc:
            raise TypeError(
                f"Coalesce: the key of a {type(message).__qualname__} is not hashable: {value!r}"
            ) from exc
        return key


#: What a message class's ``delivery`` or a send's ``policy`` may be.
DeliveryPolicy: TypeAlias = Disconnect | DropOldest | Coalesce


def policy_code(policy: DeliveryPolicy) -> int:
    """The `Frame` code of ``policy``."""
    match policy:
        case Disconnect():
            return DISCONNECT
        case DropOldest():
            return DROP_OLDEST
        case Coalesce():
            return COALESCE


def frame_policy(message: object, policy: object) -> tuple[int, object]:
    """The `Frame` code and coalescing key of ``message`` sent under ``policy``.

    ``policy`` None: the message class's ``delivery``.

    Raises:
        TypeError: ``policy`` is not a delivery policy, or the message has no key
            under it (see `Coalesce.key_of`).
    """
    chosen = policy if policy is not None else getattr(type(message), "delivery", None)
    if type(chosen) is Disconnect:
        return DISCONNECT, None
    if type(chosen) is DropOldest:
        return DROP_OLDEST, None
    if type(chosen) is Coalesce:
        return COALESCE, chosen.key_of(message)
    raise TypeError(
        f"a delivery policy is Disconnect(), DropOldest() or Coalesce(...), got {chosen!r}"
    )


#: A per-send policy as it crosses nodes: its code, the names and the key of a Coalesce.
PolicySpec: TypeAlias = tuple[int, tuple[str, ...], str | int | bytes | None]


def policy_spec(policy: DeliveryPolicy | None) -> PolicySpec | None:
    """``policy`` as a broadcast's envelope carries it to other nodes (None: the class's).

    Raises:
        TypeError: a `Coalesce` key that cannot cross nodes (not str, int, bytes or None).
    """
    match policy:
        case None:
            return None
        case Coalesce(names=names, key=key):
            if key is not None and type(key) not in (str, int, bytes):
                raise TypeError(
                    f"a Coalesce key must be a str, an int or bytes to cross nodes, got {key!r}"
                )
            return COALESCE, names, key  # pyright: ignore[reportReturnType] - checked just above
        case _:
            return policy_code(policy), (), None


def from_spec(spec: PolicySpec) -> DeliveryPolicy:
    """The policy a `policy_spec` stands for."""
    code, names, key = spec
    if code == COALESCE:
        return Coalesce(*names, key=key)
    return DropOldest() if code == DROP_OLDEST else Disconnect()
