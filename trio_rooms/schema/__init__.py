"""Schema export: a room's wire contract as JSON Schema and a TypeScript module of zod schemas.

::

    python -m trio_rooms.schema app:ChatRoom --out web/src/contract

or from Python, ``trio_rooms.schema.export(ChatRoom)``.
"""

from ._export import RoomSchema as RoomSchema
from ._export import RouteSchema as RouteSchema
from ._export import export as export
from ._model import JsonValue as JsonValue

__all__ = ["JsonValue", "RoomSchema", "RouteSchema", "export"]
