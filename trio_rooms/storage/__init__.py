"""Storage backends: `MemoryStorage` (tests, one process) and `SqliteStorage` (durable).

`Storage` is the Protocol a custom backend implements; `SessionRecord`, `Commit`,
`RecordWrite`, `StoredAlarm`, `LoggedFrame` and `ReplayCursor` are what it stores.
"""

from .._core.memory import MemoryStorage as MemoryStorage
from .._core.storage import Commit as Commit
from .._core.storage import LoggedFrame as LoggedFrame
from .._core.storage import RecordWrite as RecordWrite
from .._core.storage import ReplayCursor as ReplayCursor
from .._core.storage import SessionRecord as SessionRecord
from .._core.storage import Storage as Storage
from .._core.storage import StoredAlarm as StoredAlarm
from .sqlite import SqliteStorage as SqliteStorage

__all__ = [
    "Commit",
    "LoggedFrame",
    "MemoryStorage",
    "RecordWrite",
    "ReplayCursor",
    "SessionRecord",
    "SqliteStorage",
    "Storage",
    "StoredAlarm",
]
