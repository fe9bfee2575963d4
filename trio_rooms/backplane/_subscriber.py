"""The subscriber: the rooms the node wants, and delivering what arrives on them.

`Subscriber.changes` (what to send so Redis has the wanted subscriptions) and
`Subscriber.accept` (which push message is a broadcast for the node) hold the logic and
do no I/O; `Subscriber.run` drives them on the subscribed connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, NoReturn, final

import anyio
import attrs
import trio
from coredis.connection import BaseConnection
from coredis.typing import ResponseType

from .._core.backplane import Delivery
from ._connection import ConnectionEndedError, ping
from ._scripts import NODE_ID_SIZE, chunks

__all__ = ["Subscriber"]


@final
class Subscriber:
    """What the node is subscribed to, and the loop that delivers its broadcasts.

    Args:
        node_id: This node's id: its own broadcasts are skipped.
        timeout: Bound on a PING's reply.
        health_check_interval: Seconds between PINGs, which notice a hung Redis on a
            connection that is otherwise silent when no one publishes.
        changed: Called once per read that may have changed ``received``.
    """

    #: Names its connection in logs.
    name: ClassVar = "subscribed"

    def __init__(
        self,
        node_id: bytes,
        *,
        timeout: float,
        health_check_interval: float,
        changed: Callable[[], None],
    ) -> None:
        self._node_id = node_id
        self._statistics_changed = changed
        self._timeout = timeout
        self._health_check_interval = health_check_interval
        # What the node wants; `run` makes Redis agree.
        self._rooms_by_channel: dict[bytes, str] = {}
        #: Channels whose messages go, whole, to a callback of their own (presence),
        #: and what to call each time Redis confirms their subscription.
        self._raw: dict[bytes, Callable[[bytes], None]] = {}
        self._raw_subscribed: dict[bytes, Callable[[], None]] = {}
        self._changed = trio.Event()
        self.received = 0

    def subscribe(self, channel: bytes, room: str) -> None:
        """Deliver ``channel``'s broadcasts as ``room``'s (once Redis has the subscription)."""
        if channel not in self._rooms_by_channel:
            self._rooms_by_channel[channel] = room
            self._changed.set()

    def unsubscribe(self, channel: bytes) -> None:
        """Deliver nothing more of ``channel``, from this call on."""
        if self._rooms_by_channel.pop(channel, None) is not None:
            self._changed.set()

    def subscribe_raw(
        self, channel: bytes, deliver: Callable[[bytes], None], subscribed: Callable[[], None]
    ) -> None:
        """Hand every message of ``channel`` to ``deliver``, as published (no node id).

        ``subscribed`` is called each time Redis confirms the subscription (again after
        a reconnect): what was published before it may have been missed.
        """
        if channel not in self._raw:
            self._changed.set()
        self._raw[channel] = deliver
        self._raw_subscribed[channel] = subscribed

    def unsubscribe_raw(self, channel: bytes) -> None:
        """Stop handing ``channel``'s messages to its callback."""
        self._raw_subscribed.pop(channel, None)
        if self._raw.pop(channel, None) is not None:
            self._changed.set()

    def changes(
        self, subscribed: set[bytes]
    ) -> tuple[set[bytes], list[tuple[bytes, Sequence[bytes]]]]:
        """The wanted channels, and the commands that take Redis from ``subscribed`` there."""
        wanted = set(self._rooms_by_channel) | set(self._raw)
        commands = [(b"UNSUBSCRIBE", chunk) for chunk in chunks(sorted(subscribed - wanted))]
        commands += [(b"SUBSCRIBE", chunk) for chunk in chunks(sorted(wanted - subscribed))]
        return wanted, commands

    def accept(self, push: list[ResponseType]) -> tuple[str, bytes] | None:
        """The room and payload of another node's broadcast in ``push``, else None."""
        if len(push) != 3 or push[0] != b"message":
            return None  # subscribe and unsubscribe confirmations
        channel, data = push[1], push[2]
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return None
        room = self._rooms_by_channel.get(channel)
        if room is None or len(data) < NODE_ID_SIZE or data[:NODE_ID_SIZE] == self._node_id:
            return None  # unsubscribed since, not a node's, or our own broadcast
        return room, data[NODE_ID_SIZE:]

    def role(self, node: Delivery) -> SubscriberRole:
        """This subscriber as the supervisor runs it, delivering to ``node``."""
        return SubscriberRole(self, node)

    async def run(
        self, connection: BaseConnection, node: Delivery, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """Subscribe on ``connection`` and deliver to ``node`` until it is lost (raises then).

        ``started()`` comes once every wanted room is subscribed (a PING answered after
        the SUBSCRIBEs proves it).
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive, connection, node)
            subscribed = self._update(connection, set())
            await ping(connection, timeout=self._timeout)
            task_status.started()
            nursery.start_soon(self._subscribe_forever, connection, subscribed)
            await self._check_health_forever(connection)

    def _update(self, connection: BaseConnection, subscribed: set[bytes]) -> set[bytes]:
        wanted, commands = self.changes(subscribed)
        for name, channels in commands:
            connection.send_command(name, *channels)
        return wanted

    async def _subscribe_forever(self, connection: BaseConnection, subscribed: set[bytes]) -> None:
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            subscribed = self._update(connection, subscribed)

    async def _check_health_forever(self, connection: BaseConnection) -> NoReturn:
        """PING the subscribed connection: a hung Redis is noticed within a bound."""
        while True:
            await trio.sleep(self._health_check_interval)
            await ping(connection, timeout=self._timeout)

    async def _receive(self, connection: BaseConnection, node: Delivery) -> NoReturn:
        """Deliver every message on a subscribed room's channel, in order."""
        # coredis parses every message of a socket read at once into this stream, but
        # its ``push_messages`` hands them out one scheduler turn each: the sessions'
        # writers would then wake, and make a system call, once per message. Taking
        # the rest of the read at once lets each writer send the whole burst together.
        buffered = connection._push_message_buffer_out  # pyright: ignore[reportPrivateUsage] - no public way to drain a read
        async for push in connection.push_messages:
            self._deliver(push, node)
            while True:
                try:
                    push = buffered.receive_nowait()
                except anyio.WouldBlock:
                    break
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    break  # push_messages raises on its next turn
                self._deliver(push, node)
            self._statistics_changed()  # once per read: a delivery stays cheap
        raise ConnectionEndedError("the subscribed connection ended")  # pragma: no cover

    def _deliver(self, push: list[ResponseType], node: Delivery) -> None:
        if len(push) == 3 and isinstance(push[1], bytes) and push[1] in self._raw:
            if push[0] == b"message" and isinstance(push[2], bytes):
                self._raw[push[1]](push[2])
            elif push[0] == b"subscribe":
                self._raw_subscribed[push[1]]()
            return
        accepted = self.accept(push)
        if accepted is not None:
            self.received += 1
            node.deliver(*accepted)


@final
@attrs.frozen
class SubscriberRole:
    """A `Subscriber` bound to the node it delivers to, for the supervisor."""

    subscriber: Subscriber
    node: Delivery

    name: ClassVar = Subscriber.name

    async def run(self, connection: BaseConnection, *, task_status: trio.TaskStatus[None]) -> None:
        await self.subscriber.run(connection, self.node, task_status=task_status)

    def lost(self) -> None:
        """Nothing to do: the wanted rooms are subscribed again on the next connection."""
