"""The public names: sorted, present, documented, and cheap to import."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from types import ModuleType

import pytest

import trio_rooms
import trio_rooms.schema
import trio_rooms.storage
import trio_rooms.testing

PUBLIC_MODULES = [trio_rooms, trio_rooms.schema, trio_rooms.testing]

#: Modules ``import trio_rooms`` must not load: the testing helpers, the schema export and
#: the optional backends (SQLite, the Redis storage and backplane), and what only the
#: client (trio-websocket, wsproto) or the ASGI app (hypercorn, h2, h11) needs: an
#: embedded server's every full collection would walk their objects.
NOT_IMPORTED = (
    "trio_rooms.testing",
    "trio_rooms.schema",
    "sqlite3",
    "_sqlite3",
    "trio_rooms.storage.sqlite",
    "coredis",
    "trio_rooms._redis",
    "trio_rooms._resp",
    "trio_rooms.storage.redis",
    "trio_rooms.storage._redis_client",
    "trio_rooms.backplane.redis",
    "trio_rooms.client",
    "trio_websocket",
    "wsproto",
    "trio_rooms.transports.asgi",
    "hypercorn",
    "h2",
    "h11",
)


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    """Ruff's RUF022 order: SCREAMING_SNAKE_CASE, then CamelCase, then the rest, naturally."""
    if name.isupper():
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, natural


def _public_objects() -> Iterator[tuple[str, object]]:
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            yield f"{module.__name__}.{name}", getattr(module, name)


def _own_members(cls: type) -> Iterator[tuple[str, object]]:
    """The public methods and properties ``cls`` defines itself (not attrs-generated ones)."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        function: object = getattr(value, "__func__", value)  # classmethod, staticmethod
        if isinstance(function, property) or inspect.isfunction(function):
            yield name, function


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_all_is_sorted_and_unique(module: ModuleType) -> None:
    """``__all__`` lists each name once, in isort order (constants, classes, functions)."""
    names: list[str] = list(module.__all__)
    assert names == sorted(names, key=_isort_key)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_every_name_in_all_exists(module: ModuleType) -> None:
    """Every name in ``__all__`` is an attribute of the module."""
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_import_loads_no_testing_or_optional_backend() -> None:
    """``import trio_rooms`` (and its embedded server) loads none of `NOT_IMPORTED`."""
    code = (
        "import json, sys, trio_rooms, trio_rooms.storage, trio_rooms.transports.websocket; "
        f"prefixes = {NOT_IMPORTED!r}; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if any(m == p or m.startswith(p + '.') for p in prefixes))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    assert loaded == []


def test_the_client_and_asgi_names_load_their_modules_at_first_use() -> None:
    """A lazily exported name is its home's object, and importing it loads its home."""
    code = (
        "import json, sys, trio_rooms; "
        "before = 'trio_rooms.client' in sys.modules; "
        "from trio_rooms import RoomClient, hypercorn_config; "
        "import trio_rooms.client, trio_rooms.transports.asgi; "
        "print(json.dumps([before, RoomClient is trio_rooms.client.RoomClient, "
        "hypercorn_config is trio_rooms.transports.asgi.hypercorn_config]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == [False, True, True]


def test_sqlite_storage_loads_sqlite3_at_first_use_from_either_home() -> None:
    """``SqliteStorage`` from ``trio_rooms`` or ``trio_rooms.storage`` is one class, whose
    module (and sqlite3) loads when the name is first looked up."""
    code = (
        "import json, sys, trio_rooms, trio_rooms.storage; "
        "before = 'sqlite3' in sys.modules; "
        "from trio_rooms.storage import SqliteStorage as from_storage; "
        "from trio_rooms import SqliteStorage; "
        "import trio_rooms.storage.sqlite; "
        "print(json.dumps([before, 'sqlite3' in sys.modules, "
        "SqliteStorage is from_storage is trio_rooms.storage.sqlite.SqliteStorage]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == [False, True, True]


@pytest.mark.parametrize("module", [trio_rooms, trio_rooms.storage], ids=lambda m: m.__name__)
def test_dir_lists_every_name_in_all(module: ModuleType) -> None:
    """The lazily imported names are in ``dir()`` before their first use, as the others."""
    code = f"import json, {module.__name__} as m; print(json.dumps(dir(m)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    listed: list[str] = json.loads(result.stdout)
    assert set(module.__all__) <= set(listed)


def test_an_unknown_name_is_an_attribute_error() -> None:
    """The lazy look-up raises what a missing attribute raises, naming it."""
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(trio_rooms, "no_such_name")  # noqa: B009 - a name pyright would refuse


def test_public_classes_and_functions_have_docstrings() -> None:
    """Every public class and function, and their own public methods, has a docstring."""
    undocumented: list[str] = []
    for qualname, obj in _public_objects():
        if inspect.isclass(obj):
            if not (vars(obj).get("__doc__") or "").strip():
                undocumented.append(qualname)
            for member, value in _own_members(obj):
                if not (value.__doc__ or "").strip():
                    undocumented.append(f"{qualname}.{member}")
        elif inspect.isfunction(obj) and not (obj.__doc__ or "").strip():
            undocumented.append(qualname)
    assert undocumented == []


def _every_public_module() -> list[ModuleType]:
    """``trio_rooms`` and each module below it with no ``_`` part (the demo aside)."""
    modules = [trio_rooms]
    for info in pkgutil.walk_packages(trio_rooms.__path__, "trio_rooms."):
        parts = info.name.split(".")[1:]
        if any(part.startswith("_") for part in parts) or parts[0] == "demo":
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            modules.append(module)
    return modules


def test_each_public_name_has_one_home() -> None:
    """An object is exported by one public module, its home; only ``trio_rooms`` and the
    package above a home may export it again (trio's ``test_exports`` rule)."""
    exporters: defaultdict[int, list[str]] = defaultdict(list)
    names: dict[int, str] = {}
    for module in _every_public_module():
        for name in module.__all__:
            obj = getattr(module, name)
            exporters[id(obj)].append(module.__name__)
            names[id(obj)] = name
    doubled: list[tuple[str, list[str]]] = []
    for key, modules in exporters.items():
        homes = [m for m in modules if m != "trio_rooms"]
        # A package re-exporting what one of its own modules defines does not count.
        homes = [m for m in homes if not any(o.startswith(m + ".") for o in homes)]
        if len(homes) > 1:
            doubled.append((names[key], modules))
    assert doubled == []


def test_trio_rooms_reexports_are_the_homes_objects() -> None:
    """Each top-level name is the object its home exports (re-exported ``X as X``)."""
    for module in _every_public_module()[1:]:
        for name in module.__all__:
            if name in trio_rooms.__all__:
                assert getattr(trio_rooms, name) is getattr(module, name), name
