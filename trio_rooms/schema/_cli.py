"""The command line: ``python -m trio_rooms.schema MODULE:RoomClass [--out DIR]``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._core.room import Room
from ._export import export

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); the exit status.

    0 when written, 1 when the room cannot be described (the reason on stderr), 2
    for bad arguments or a room that cannot be imported.
    """
    parser = argparse.ArgumentParser(
        prog="python -m trio_rooms.schema",
        description="Write a room's wire contract: a TypeScript module of zod schemas "
        "(schema.ts) and JSON Schema documents.",
    )
    parser.add_argument("room", metavar="MODULE:RoomClass", help="for example app:ChatRoom")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write every file into DIR (made if missing); without it, print schema.ts",
    )
    parser.add_argument(
        "--keep-names",
        action="store_true",
        help="the server runs with RoomsConfig(camel_case=False)",
    )
    parser.add_argument(
        "--allow-extra-keys",
        action="store_true",
        help="the server runs with RoomsConfig(forbid_extra_keys=False)",
    )
    args = parser.parse_args(argv)
    spec: str = args.room
    out: Path | None = args.out
    try:
        room = _load(spec)
    except _BadRoomError as exc:
        parser.error(str(exc))
    try:
        contract = export(
            room, camel_case=not args.keep_names, forbid_extra_keys=not args.allow_extra_keys
        )
    except TypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if out is None:
        sys.stdout.write(contract.typescript)
        return 0
    for name, text in contract.files().items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    return 0


class _BadRoomError(Exception):
    """``MODULE:RoomClass`` names nothing importable, or not a room class."""


def _load(spec: str) -> type[Room[Any]]:
    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise _BadRoomError(f"expected MODULE:RoomClass, got {spec!r}")
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise _BadRoomError(f"cannot import {module_name!r}: {exc}") from exc
    for part in qualname.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise _BadRoomError(f"{module_name!r} has no {qualname!r}") from None
    if not (isinstance(found, type) and issubclass(found, Room)):
        raise _BadRoomError(f"{spec} is not a Room subclass: {found!r}")
    return found  # pyright: ignore[reportUnknownVariableType] - a Room subclass, checked
