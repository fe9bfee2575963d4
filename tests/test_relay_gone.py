"""A GONE answering an entry of a relay its sender does not know (a node killed and
started again under its id, or a relay that ended there) is no loss of entries, whatever
its seq: the relay's end gets it as it is, with the seq it answers, on a real Redis."""

from __future__ import annotations

import trio

from trio_rooms._core.outbound import Frame
from trio_rooms.backplane._relay_end import RelayEnd
from trio_rooms.backplane._relay_entries import GONE, MESSAGE, Entry, gone
from trio_rooms.backplane._relay_link import RelayLink

from .redis_server import RedisServer

PATIENCE = 10.0


class _Recorder:
    """An `Endpoint` that keeps what it is handed."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.why: list[str] = []
        self.handed = trio.Event()

    def deliver(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.handed.set()

    def frames(self, frames: list[Frame]) -> None:
        self.why.append(f"frames: {frames!r:.40}")
        self.handed.set()

    def broken(self, why: str) -> None:
        self.why.append(why)
        self.handed.set()


def _link(url: str, node: str) -> RelayLink:
    return RelayLink(
        url, node, prefix="t:", timeout=0.5, dead_after=60, max_stream=100, max_queue=64
    )


async def test_a_gone_for_a_relay_its_sender_does_not_know_is_handed_over_not_a_loss(
    redis_server: RedisServer,
) -> None:
    """Node b's relay to a had 8 entries from a's earlier process and sent 6; a's new
    process answers b's 7th with GONE (its own seq 1, saying 7): b's end gets that GONE,
    not a break for 'entries lost: 1 after 8'."""
    url = redis_server.url
    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            link_a, link_b = _link(url, "a"), _link(url, "b")
            await nursery.start(link_a.run)
            await nursery.start(link_b.run)
            end = RelayEnd("a", "0ld.1", received=8)
            end.sent = 6
            recorder = _Recorder()
            link_b.add(end, recorder)
            link_b.send_nowait(end, MESSAGE, '{"type":"add"}')
            await recorder.handed.wait()
            why, entries = list(recorder.why), list(recorder.entries)
            nursery.cancel_scope.cancel()  # (the links' ends then break: Redis is left)
    assert why == []
    [answer] = entries
    assert (answer.kind, answer.source, answer.relay) == (GONE, "a", "0ld.1")
    assert gone(answer.body) == 7
