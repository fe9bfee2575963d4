"""The Node side of the schema tests: the npm project in ``node/`` and its validator process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast, final

import attrs
import pytest

NODE_DIR = Path(__file__).parent / "node"


def node_project() -> Path:
    """``node/`` with its dependencies installed by ``npm ci``; skip (fail in CI) without node."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "node and npm are not installed (Debian: apt-get install nodejs npm)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the Node schema tests")
        pytest.skip(reason)
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
        )
    return NODE_DIR


@final
@attrs.frozen
class Verdict:
    """What the generated zod module and the JSON Schema document said of one frame."""

    zod: bool
    json_schema: bool
    zod_error: str | None
    json_schema_error: str | None


@final
class Validator:
    """One ``node validate.mjs`` process: a frame a line in, a verdict a line out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._stdin = cast("IO[str]", process.stdin)
        self._stdout = cast("IO[str]", process.stdout)
        self._next_id = 0

    def read(self) -> dict[str, object]:
        line = self._stdout.readline()
        if not line:
            self._process.wait(timeout=10)
            stderr = cast("IO[str]", self._process.stderr).read()
            raise RuntimeError(f"validate.mjs exited with {self._process.returncode}: {stderr}")
        return cast("dict[str, object]", json.loads(line))

    def check(self, target: str, document: str, wire: str, frame: str) -> Verdict:
        """Validate ``frame`` (JSON text, or msgpack in base64) against ``target``'s schemas."""
        self._next_id += 1
        request = {
            "id": self._next_id,
            "target": target,
            "document": document,
            "format": wire,
            "frame": frame,
        }
        self._stdin.write(json.dumps(request) + "\n")
        self._stdin.flush()
        answer = self.read()
        assert answer["id"] == self._next_id
        return Verdict(
            zod=answer["zod"] is True,
            json_schema=answer["jsonSchema"] is True,
            zod_error=cast("str | None", answer["zodError"]),
            json_schema_error=cast("str | None", answer["jsonSchemaError"]),
        )


@contextmanager
def open_validator(project: Path, contract: Path) -> Generator[Validator]:
    """A validator process for the exported files in ``contract``, ended on exit."""
    process = subprocess.Popen(
        ["node", str(project / "validate.mjs"), str(contract)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    validator = Validator(process)
    try:
        assert validator.read() == {"ready": True}
        yield validator
    finally:
        cast("IO[str]", process.stdin).close()
        try:
            process.wait(timeout=10)
        finally:
            if process.returncode is None:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
