"""Storage backends: `MemoryStorage` (tests, one process) and `SqliteStorage` (durable)."""

from .._core.memory import MemoryStorage as MemoryStorage
from .._core.storage import SessionRecord as SessionRecord
from .._core.storage import Storage as Storage
from .sqlite import SqliteStorage as SqliteStorage

__all__ = ["MemoryStorage", "SessionRecord", "SqliteStorage", "Storage"]
