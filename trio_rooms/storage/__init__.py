"""Storage backends: `MemoryStorage` (tests, one process) and `SqliteStorage` (durable).

`Storage` is the Protocol a custom backend implements (and `FencedStorage`, optional,
one that several processes can share); `SessionRecord`, `Commit`, `RecordWrite`,
`StoredAlarm`, `LoggedFrame` and `ReplayCursor` are what it stores.
"""

from typing import TYPE_CHECKING

from .._core.memory import MemoryStorage as MemoryStorage
from .._core.storage import Commit as Commit
from .._core.storage import FencedStorage as FencedStorage
from .._core.storage import LoggedFrame as LoggedFrame
from .._core.storage import RecordWrite as RecordWrite
from .._core.storage import ReplayCursor as ReplayCursor
from .._core.storage import SessionRecord as SessionRecord
from .._core.storage import Storage as Storage
from .._core.storage import StoredAlarm as StoredAlarm

if TYPE_CHECKING:
    from .sqlite import SqliteStorage as SqliteStorage

__all__ = [
    "Commit",
    "FencedStorage",
    "LoggedFrame",
    "MemoryStorage",
    "RecordWrite",
    "ReplayCursor",
    "SessionRecord",
    "SqliteStorage",
    "Storage",
    "StoredAlarm",
]

if not TYPE_CHECKING:  # pyright sees the import above: no attribute is unknown to it

    def __getattr__(name: str) -> object:
        # At first use: a server on MemoryStorage or Redis never loads sqlite3.
        if name != "SqliteStorage":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from .sqlite import SqliteStorage

        globals()[name] = SqliteStorage  # once: the next look-up finds it
        return SqliteStorage

    def __dir__() -> list[str]:
        return sorted({*globals(), "SqliteStorage"})
