"""RFC 6455 conformance: the Autobahn testsuite's cases 1 to 10 (kosoku) against an echo room."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

import trio_rooms

from .echo_app import EchoRoom, echo_config

EXCLUDED = ["12.*", "13.*"]  # permessage-deflate, which the server does not offer
CASES = 301  # kosoku 0.1's sections 1 to 10
CONCURRENCY = 4

#: Passed, strictly or with a divergence from a SHOULD. 3.2-3.4, 4.1.3-4.1.5, 4.2.3-4.2.5
#: and 5.15 send a valid message, then a protocol error. A session that closes for a
#: protocol error handles nothing more, so the valid message is echoed (OK) only when its
#: reply went out before the error was read (NON-STRICT otherwise): that depends on how the
#: kernel splits the client's writes, so both verdicts pass.
NON_STRICT = frozenset(
    {"3.2", "3.3", "3.4", "4.1.3", "4.1.4", "4.1.5", "4.2.3", "4.2.4", "4.2.5", "5.15"}
)
#: What the RFC leaves open. 7.1.6: the echo of a message that arrived just before the
#: client's close is dropped (a session sends nothing once the peer has closed); 7.13.1
#: and 7.13.2: close codes 5000 and 65535, outside every range the RFC defines.
INFORMATIONAL = frozenset({"7.1.6", "7.13.1", "7.13.2"})


@pytest.mark.slow
async def test_autobahn_cases_1_to_10_pass(nursery: trio.Nursery) -> None:
    """0 FAILED, 0 ERROR; only the listed cases are NON-STRICT or INFORMATIONAL."""
    async with trio_rooms.open_rooms(EchoRoom, config=echo_config()) as rooms:
        port: int = await nursery.start(trio_rooms.serve_websocket, rooms, "127.0.0.1", 0)
        runner = Path(__file__).with_name("kosoku_runner.py")
        url = f"ws://127.0.0.1:{port}/rooms/echo/websocket"
        command = [sys.executable, str(runner), url, str(CONCURRENCY), *EXCLUDED]
        with trio.fail_after(150):
            process = await trio.run_process(
                command, capture_stdout=True, capture_stderr=True, check=False
            )
    assert process.returncode == 0, process.stderr.decode()[-3000:]
    results = [json.loads(line) for line in process.stdout.decode().splitlines()]
    assert len(results) == CASES
    verdicts = {result["id"]: (result["behavior"], result["close"]) for result in results}
    unexpected = {
        case: verdict for case, verdict in verdicts.items() if verdict not in _allowed(case)
    }
    assert unexpected == {}, [r for r in results if r["id"] in unexpected]


def _allowed(case: str) -> set[tuple[str, str]]:
    if case in NON_STRICT:
        return {("NON-STRICT", "OK"), ("OK", "OK")}
    if case in INFORMATIONAL:
        return {("INFORMATIONAL", "INFORMATIONAL")}
    return {("OK", "OK")}
