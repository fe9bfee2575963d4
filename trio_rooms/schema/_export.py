"""``export``: a room class's wire contract as JSON Schema documents and a zod module."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, final
from urllib.parse import quote

import attrs

from .._core.room import Room
from . import _jsonschema, _typescript
from ._model import DefKey, JsonValue, Ref, WireType, binary_definitions, reached
from ._naming import assign_names, msgpack_names
from ._reader import Reader
from ._room import read_room

__all__ = ["RoomSchema", "RouteSchema", "export"]


@final
@attrs.frozen
class RouteSchema:
    """The JSON Schema documents of one HTTP route.

    ``body`` is None for a route that takes no body; ``response`` is None for one
    that answers with a `trio_rooms.Response` only (its body is the handler's own).
    """

    body: dict[str, JsonValue] | None
    response: dict[str, JsonValue] | None


@final
@attrs.frozen
class RoomSchema:
    """A room's wire contract, as :func:`export` makes it."""

    #: ``"module:RoomClass"``, named in the TypeScript module's first line.
    source: str
    #: The JSON Schema document of what clients send (``oneOf`` the client messages).
    client: dict[str, JsonValue]
    #: The JSON Schema document of what the server sends; with requests, its
    #: ``"x-trio-rooms-replies"`` maps each request's tag to its reply.
    server: dict[str, JsonValue]
    #: The documents of each HTTP route, by ``"METHOD /path"``, sorted by path and method.
    routes: Mapping[str, RouteSchema]
    #: The TypeScript module: zod 4 schemas and their types.
    typescript: str
    #: When the messages hold bytes (a bin in msgpack, base64 in JSON): the documents of
    #: msgpack frames, ``client`` and ``server``'s twins; else None, the same documents
    #: describe both formats.
    msgpack_client: dict[str, JsonValue] | None = None
    msgpack_server: dict[str, JsonValue] | None = None
    #: For a room with presence: the document of its ``$presence`` frames, with the
    #: metadata class (and its msgpack twin when the formats differ); else None.
    presence: dict[str, JsonValue] | None = None
    msgpack_presence: dict[str, JsonValue] | None = None

    def files(self) -> dict[str, str]:
        """Everything as files, by path relative to the output folder.

        ``schema.ts``, ``client.schema.json``, ``server.schema.json`` (with
        ``client.msgpack.schema.json`` and ``server.msgpack.schema.json`` when the
        formats differ), ``presence.schema.json`` for a room with presence (and
        ``presence.msgpack.schema.json`` when the formats differ), and for each route
        ``routes/<METHOD>_<path>.<body|response>.schema.json``, the path without its
        leading ``/`` and percent-encoded (``GET /a/b`` is ``GET_a%2Fb``).
        """
        files = {
            "schema.ts": self.typescript,
            "client.schema.json": _json(self.client),
            "server.schema.json": _json(self.server),
        }
        if self.msgpack_client is not None and self.msgpack_server is not None:
            files["client.msgpack.schema.json"] = _json(self.msgpack_client)
            files["server.msgpack.schema.json"] = _json(self.msgpack_server)
        if self.presence is not None:
            files["presence.schema.json"] = _json(self.presence)
        if self.msgpack_presence is not None:
            files["presence.msgpack.schema.json"] = _json(self.msgpack_presence)
        for name, route in self.routes.items():
            method, _, path = name.partition(" ")
            stem = f"routes/{method}_{quote(path[1:], safe='')}"
            for part, doc in (("body", route.body), ("response", route.response)):
                if doc is not None:
                    files[f"{stem}.{part}.schema.json"] = _json(doc)
        return files


def export(
    room: type[Room[Any]], *, camel_case: bool = True, forbid_extra_keys: bool = True
) -> RoomSchema:
    """The wire contract of ``room``: its session's messages both ways, its routes, and
    its presence frames if it declares ``presence = Presence(Meta)``.

    ::

        contract = trio_rooms.schema.export(ChatRoom)
        Path("web/src/schema.ts").write_text(contract.typescript)

    The schemas take exactly what the codec takes and writes with the same
    settings (pass the server's ``RoomsConfig.camel_case`` and
    ``RoomsConfig.forbid_extra_keys``): tags, wire names, optional fields left
    out rather than ``null``, defaults, extra keys. The output depends only on the
    classes, so it can be checked in and compared.

    Raises:
        TypeError: ``room`` is not a room class with bound messages; the codec
            refuses one of its types; or a type cannot be described exactly (the
            message names the field and why).
    """
    reader = Reader(camel_case=camel_case, forbid_extra_keys=forbid_extra_keys)
    wire = read_room(room, reader)
    names = assign_names(reader.defs)
    roots = [*wire.client, *wire.server, *([wire.presence] if wire.presence else [])]
    binary = binary_definitions(reader.defs) & reached(roots, reader.defs)
    twins = msgpack_names(binary, names) if binary else None
    source = f"{room.__module__}:{room.__qualname__}"
    label = room.__qualname__

    def document(title: str, root: WireType | None) -> dict[str, JsonValue] | None:
        return None if root is None else _jsonschema.document(title, root, reader.defs, names)

    routes = {
        r.name: RouteSchema(
            body=document(f"{label} {r.name} body", r.body),
            response=document(f"{label} {r.name} response", r.response),
        )
        for r in wire.routes
    }

    def messages(
        direction: str, refs: list[Ref], twins: Mapping[DefKey, str]
    ) -> dict[str, JsonValue]:
        title = f"{label} {direction} messages (msgpack)"
        replies = wire.replies if direction == "server" else ()
        return _jsonschema.document(
            title, refs, reader.defs, twins, bytes_as="bin", replies=replies
        )

    server = _jsonschema.document(
        f"{label} server messages", wire.server, reader.defs, names, replies=wire.replies
    )
    presence = wire.presence
    presence_docs: tuple[dict[str, JsonValue] | None, dict[str, JsonValue] | None] = (None, None)
    if presence is not None:
        title = f"{label} presence frames"
        presence_docs = (
            _jsonschema.presence_document(title, presence, reader.defs, names),
            None
            if twins is None or twins[presence.key] == names[presence.key]
            else _jsonschema.presence_document(
                f"{title} (msgpack)", presence, reader.defs, twins, bytes_as="bin"
            ),
        )
    return RoomSchema(
        source=source,
        client=_jsonschema.document(f"{label} client messages", wire.client, reader.defs, names),
        server=server,
        routes=routes,
        typescript=_typescript.module(
            source,
            wire.client,
            wire.server,
            wire.routes,
            reader.defs,
            names,
            twins,
            wire.replies,
            presence,
        ),
        msgpack_client=None if twins is None else messages("client", wire.client, twins),
        msgpack_server=None if twins is None else messages("server", wire.server, twins),
        presence=presence_docs[0],
        msgpack_presence=presence_docs[1],
    )


def _json(doc: dict[str, JsonValue]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
