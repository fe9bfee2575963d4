"""The schema modules the TypeScript client's demo and tests import are the export's output.

After changing the demo's messages (or the test room's), regenerate them with::

    python -m trio_rooms.schema trio_rooms.demo.app:ChatRoom > clients/typescript/demo/schema.ts
    python -m trio_rooms.schema tests.ts.server:TestRoom > clients/typescript/test/room.schema.ts

and rebuild the demo's bundle (``npm run bundle:demo`` in ``clients/typescript``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trio_rooms import Room
from trio_rooms.demo.app import ChatRoom
from trio_rooms.schema import export

from ..ts.server import TestRoom as TsTestRoom  # not collected as a test class

CLIENT = Path(__file__).parents[2] / "clients" / "typescript"


@pytest.mark.parametrize(
    ("room", "module"),
    [(ChatRoom, CLIENT / "demo" / "schema.ts"), (TsTestRoom, CLIENT / "test" / "room.schema.ts")],
    ids=["demo", "ts-tests"],
)
def test_the_committed_schema_module_is_the_exported_one(
    room: type[Room[Any]], module: Path
) -> None:
    """No hand edit or stale copy: the file equals what the export makes of its room today."""
    assert module.read_text(encoding="utf-8") == export(room).typescript
