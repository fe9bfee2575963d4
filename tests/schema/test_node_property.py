"""The generated zod module and JSON Schema documents take exactly what the codec takes.

Hypothesis builds messages and route bodies from the Python annotations, the codec
encodes them, and some are mutated (a wrong type, a missing field, an extra key, a
null, a wrong tag). One Node process per test validates every frame with the zod
module and, through ajv, the JSON Schema documents; each verdict must be the
codec's own. The one difference allowed: the codec decodes ``null`` for an
optional field as a missing one, while the schemas describe what it writes (the
field left out), so they refuse the ``null``.

Each format is checked against its own contract: the module's ``msgpackSchema`` and
the ``*.msgpack.schema.json`` documents for msgpack frames, where bytes are bins. A
msgpack frame may also get a bin where something else belongs; only zod's verdict is
compared then, because ajv sees a ``Uint8Array`` as an object with index keys.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast, final

import attrs
import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_rooms import DecodeError, Room
from trio_rooms.codec import WireFormat, make_codec
from trio_rooms.codec._record import JsonRecords
from trio_rooms.schema import RoomSchema, export

from .kinds_app import KindsRoom, LooseRoom
from .node_contract import Validator, open_validator
from .strategies import instances

Mutation = Literal["none", "wrong_type", "missing", "extra", "null", "wrong_tag", "bin"]
MUTATIONS: list[Mutation] = ["wrong_type", "missing", "extra", "null", "wrong_tag", "none"]
# "QUI" is base64 without its padding, "+/8=" valid base64 (a str, not a bin, in msgpack).
WRONG_VALUES: list[object] = ["x", "QUI", "+/8=", 1.5, 7, True, [], {}, {"k": 1}, [1]]
Path_ = list[str | int]


@final
@attrs.frozen
class Target:
    """One thing the contract describes: a direction's messages, or a route's body or answer."""

    name: str
    document: str
    values: st.SearchStrategy[Any]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]  # raises DecodeError
    tags: tuple[str, ...] = ()


def _message_targets(
    room: type[Room[Any]], wire: WireFormat, options: dict[str, bool], files: set[str]
) -> list[Target]:
    session = room.session_class
    assert session is not None
    client, server = session.message_classes()
    targets: list[Target] = []
    for name, classes in (("client", client), ("server", server)):
        codec = make_codec(wire, *classes, **options)
        own = f"{name}.{wire}.schema.json"  # the msgpack documents, when bytes differ
        targets.append(
            Target(
                name=name,
                document=own if own in files else f"{name}.schema.json",
                values=st.one_of([instances(cls) for cls in classes]),
                encode=codec.encode,
                decode=codec.decode,
                tags=codec.tags,
            )
        )
    return targets


def _route_targets(
    contract: RoomSchema, room: type[Room[Any]], options: dict[str, bool]
) -> list[Target]:
    records = JsonRecords(**options)
    files = contract.files()
    targets: list[Target] = []
    for name, classes in _route_classes(room).items():
        document = next(
            path for path in files if path.startswith("routes/") and _route_of(path) == name
        )

        def decode(data: bytes, classes: list[type[object]] = classes) -> object:
            errors: list[DecodeError] = []
            for cls in classes:  # an answer of several classes: any of them
                try:
                    return records.decode(cls, data)
                except DecodeError as exc:
                    errors.append(exc)
            raise errors[0]

        targets.append(
            Target(
                name=name,
                document=document,
                values=st.one_of([instances(cls) for cls in classes]),
                encode=records.encode,
                decode=decode,
            )
        )
    return targets


def _route_classes(room: type[Room[Any]]) -> dict[str, list[type[object]]]:
    if room is KindsRoom:
        from .kinds_app import Attachment, Gone, Info, Moved, Point

        return {
            "GET /info response": [Info],
            "POST /move/point body": [Point],
            "POST /move/point response": [Moved, Gone],
            "PUT /move/point body": [Point],
            "PUT /move/point response": [Moved],
            "POST /attach body": [Attachment],
            "POST /attach response": [Attachment],
        }
    from .kinds_app import Info, Moved

    return {"POST /move body": [Moved], "POST /move response": [Info]}


def _route_of(path: str) -> str:
    """``routes/POST_move%2Fpoint.body.schema.json`` -> ``POST /move/point body``."""
    from urllib.parse import unquote

    stem = path.removeprefix("routes/").removesuffix(".schema.json")
    head, _, part = stem.rpartition(".")
    method, _, slug = head.partition("_")
    return f"{method} /{unquote(slug)} {part}"


Container = dict[str, object] | list[object]


def _sites(obj: object, path: Path_) -> list[tuple[Container, Path_]]:
    """Every object and non-empty list in ``obj``, with its path."""
    found: list[tuple[Container, Path_]] = []
    if isinstance(obj, dict):
        entries = cast("dict[str, object]", obj)
        found.append((entries, path))
        for key, value in entries.items():
            found += _sites(value, [*path, key])
    elif isinstance(obj, list) and obj:
        items = cast("list[object]", obj)
        found.append((items, path))
        for i, value in enumerate(items):
            found += _sites(value, [*path, i])
    return found


def _mutate(
    data: st.DataObject, obj: dict[str, object], mutation: Mutation, tags: tuple[str, ...]
) -> tuple[dict[str, object], Path_ | None]:
    """A mutated copy of ``obj`` and the path of the changed entry (None: unchanged)."""
    obj = copy.deepcopy(obj)
    if mutation == "none" or (mutation == "wrong_tag" and not tags):
        return obj, None
    if mutation == "wrong_tag":
        obj["type"] = data.draw(st.sampled_from(["nope", "", 5, None, *tags]))
        return obj, ["type"]
    wrong = [b"\x01"] if mutation == "bin" else WRONG_VALUES
    sites = _sites(obj, [])
    if mutation in ("extra", "missing"):
        sites = [(site, path) for site, path in sites if isinstance(site, dict)]
    if mutation == "extra":
        site, path = data.draw(st.sampled_from(sites))
        site = cast("dict[str, object]", site)
        site["zzExtra"] = 1
        return obj, [*path, "zzExtra"]
    entries: list[tuple[Container, Path_, str | int]] = []
    for site, path in sites:
        pairs: list[tuple[str | int, object]] = (
            sorted(site.items()) if isinstance(site, dict) else list(enumerate(site))
        )
        entries += [
            (site, path, k)
            for k, v in pairs
            if (mutation != "null" or v is not None) and (mutation != "bin" or type(v) is not bytes)
        ]
    if not entries:
        return obj, None
    site, path, key = data.draw(st.sampled_from(entries))
    if isinstance(site, dict):
        if mutation == "missing":
            del site[cast("str", key)]
        else:
            site[cast("str", key)] = (
                None if mutation == "null" else data.draw(st.sampled_from(wrong))
            )
    else:
        site[cast("int", key)] = None if mutation == "null" else data.draw(st.sampled_from(wrong))
    return obj, [*path, key]


def _present(obj: object, path: Path_) -> bool:
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = cast("dict[str | int, object]", obj)[key]
        elif (
            isinstance(obj, list) and isinstance(key, int) and key < len(cast("list[object]", obj))
        ):
            obj = cast("list[object]", obj)[key]
        else:
            return False
    return True


def _check_all(validator: Validator, targets: list[Target], wire: WireFormat) -> None:
    loads: Callable[[bytes], Any] = orjson.loads if wire == "json" else msgpack.unpackb
    mutations: list[Mutation] = MUTATIONS if wire == "json" else [*MUTATIONS, "bin"]
    dumps: Callable[[Any], bytes] = (
        orjson.dumps if wire == "json" else lambda o: msgpack.packb(o, use_bin_type=True)
    )

    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(targets))
        value = data.draw(target.values)
        mutation = data.draw(st.sampled_from(mutations))
        mutated, path = _mutate(data, loads(target.encode(value)), mutation, target.tags)
        frame = dumps(mutated)
        try:
            decoded: object = target.decode(frame)
        except DecodeError:
            expected = False
        else:
            # The codec reads a null optional field as a missing one, and writes it so.
            lenient = mutation == "null" and not _present(loads(target.encode(decoded)), path or [])
            expected = not lenient
        if path is None:
            assert expected, f"the codec refuses what it wrote: {mutated!r}"
        shown = frame.decode() if wire == "json" else base64.b64encode(frame).decode()
        verdict = validator.check(target.name, target.document, wire, shown)
        assert verdict.zod is expected, (target.name, mutation, mutated, verdict)
        if mutation != "bin":
            assert verdict.json_schema is expected, (target.name, mutation, mutated, verdict)

    check()


CASES = [
    pytest.param(KindsRoom, {"camel_case": True, "forbid_extra_keys": True}, id="camel-strict"),
    pytest.param(LooseRoom, {"camel_case": False, "forbid_extra_keys": False}, id="kept-loose"),
]


@pytest.mark.parametrize("wire", ["json", "msgpack"])
@pytest.mark.parametrize(("room", "options"), CASES)
def test_node_validates_exactly_what_the_codec_decodes(
    node_dir: Path,
    tmp_path: Path,
    room: type[Room[Any]],
    options: dict[str, bool],
    wire: WireFormat,
) -> None:
    """Zod and JSON Schema pass every encoded frame, and a mutated one iff the codec decodes it."""
    contract = export(room, **options)
    for name, text in contract.files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    targets = _message_targets(room, wire, options, set(contract.files()))
    if wire == "json":  # routes are HTTP bodies: JSON only
        targets += _route_targets(contract, room, options)
    with open_validator(node_dir, tmp_path) as validator:
        _check_all(validator, targets, wire)
