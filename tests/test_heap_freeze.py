"""`RoomsConfig.freeze_heap`: the first `open_rooms` of a process freezes its heap, once.

Each case runs in a fresh interpreter: the test process's own first `open_rooms`
has frozen its heap long before.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = """
import gc, json, sys, weakref
import trio
import trio_rooms
from tests.chat_app import ChatRoom

class Garbage:
    pass

def cyclic_garbage() -> "weakref.ref[Garbage]":
    garbage = Garbage()
    garbage.self = garbage  # only a collection frees it
    return weakref.ref(garbage)

async def main() -> None:
    config = trio_rooms.RoomsConfig(freeze_heap=sys.argv[1] == "on")
    before = gc.get_freeze_count()
    garbage = cyclic_garbage()
    gc.disable()  # no automatic collection may free it first
    async with trio_rooms.open_rooms(ChatRoom, config=config):
        first = gc.get_freeze_count()
        collected = garbage() is None
    made_since = [object() for _ in range(1000)], {"new": [1]}
    async with trio_rooms.open_rooms(ChatRoom, config=config):
        second = gc.get_freeze_count()
    print(json.dumps({"before": before, "first": first, "second": second,
                      "collected": collected, "kept": len(made_since)}))

trio.run(main)
"""


def _run(freeze: str) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), freeze],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    figures: dict[str, int] = json.loads(result.stdout)
    return figures


def test_the_first_open_rooms_freezes_the_heap_built_before_it_and_only_once() -> None:
    figures = _run("on")
    assert figures["before"] == 0
    # The modules and classes imported (thousands of objects) are frozen...
    assert figures["first"] > 10_000
    # ...but not the cyclic garbage left before it: collected first, never kept for ever.
    assert figures["collected"]
    # A second open_rooms freezes nothing more (what the rooms made stays collectable):
    # frozen objects freed since leave the count, the 1,000 made since are not in it.
    assert figures["second"] <= figures["first"]


def test_freeze_heap_false_leaves_the_collector_alone() -> None:
    figures = _run("off")
    assert figures["before"] == figures["first"] == figures["second"] == 0
    assert not figures["collected"]
