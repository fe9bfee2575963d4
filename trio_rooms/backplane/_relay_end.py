"""``RelayEnd``: one relay as the link sees it, apart so that what groups frames for a
relay (`_relay_frames`) and the link that sends them do not import each other."""

from __future__ import annotations

from typing import final

import trio

__all__ = ["RelayEnd"]


@final
class RelayEnd:
    """One relay as the link sees it: its peer node, its id and its entries' numbers."""

    __slots__ = ("head", "peer", "received", "relay", "sent", "since")

    def __init__(self, peer: str, relay: str, received: int = 0) -> None:
        self.peer = peer
        self.relay = relay
        #: The seq of the last entry sent, and of the last one received.
        self.sent = 0
        self.received = received
        #: When it was made: a peer is given ``dead_after`` from then to be heard from.
        self.since = trio.current_time()
        #: Its MESSAGEs' first bytes, once the link made them (`message_head`).
        self.head = b""
