"""Room names and paths built to escape: every one is refused before any upgrade or room."""

from __future__ import annotations

import pytest
import trio

from trio_rooms import Rooms

from ..chat_app import ChatRoom
from ..sockets import connect_socket, handshake_request, read_http_response

TARGETS: list[bytes] = [
    b"/rooms/../websocket",
    b"/rooms/./websocket",
    b"/rooms/%2e%2e/websocket",
    b"/rooms/%2E%2E/websocket",
    b"/rooms/..%2f..%2fetc/websocket",
    b"/rooms/../../etc/passwd/websocket",
    b"/rooms/lobby/../admin/websocket",
    b"/rooms/..\\..\\etc/websocket",
    b"/rooms/a%00b/websocket",
    b"/rooms/a\x00b/websocket",  # a raw NUL on the request line
    b"/rooms/%00/websocket",
    b"/rooms/" + b"a" * 10_240 + b"/websocket",  # 10 KB name
    b"/rooms/" + b"a" * 129 + b"/websocket",  # one over the limit
    b"/rooms/*/websocket",
    b"*",
    b"/rooms/a\r\nX-Injected: yes/websocket",  # CRLF in the path splits the request
    b"/rooms/a%0d%0aX-Injected:%20yes/websocket",
    b"/rooms/a b/websocket",
    b"/rooms//websocket",
    b"/rooms/a/b/websocket",
    b"/rooms/a%2fb/websocket",
    b"/rooms/%2561/websocket",  # "%61" encoded again: decoded once, "%" stays refused
    b"/rooms/%/websocket",
    b"/rooms/\xc3\xa9/websocket",  # UTF-8 outside the name alphabet
    b"/rooms/lobby/websocket/../../admin",
    b"//rooms/lobby/websocket",
    b"http://evil.example/rooms/../websocket",
    b"/rooms/lobby/websocket?format=%00",
    b"/rooms/lobby/websocket?format=../../x",
]


async def test_injected_names_and_paths_are_refused_before_any_room_exists(
    port: int, rooms: Rooms[ChatRoom]
) -> None:
    """Each target gets 400 or 404 as its first response line, never 101; no room is made."""
    answers: dict[bytes, int] = {}
    with trio.fail_after(10):
        for target in TARGETS:
            stream = await connect_socket(port)
            async with stream:
                await stream.send_all(handshake_request(target))
                status, head, _ = await read_http_response(stream)
            answers[target] = status
            assert b" 101 " not in head
    refused = {target: status for target, status in answers.items() if status not in (400, 404)}
    assert refused == {}
    statistics = rooms.statistics()
    assert (statistics.rooms, statistics.sessions) == (0, 0)


@pytest.mark.parametrize(
    "target",
    [
        b"/rooms/lobby/websocket",
        b"/rooms/a.b~c_d-9/websocket",
        b"/rooms/%61/websocket",  # an encoded unreserved "a" is "a" (RFC 3986 6.2.2.2)
    ],
)
async def test_a_valid_name_still_connects(port: int, target: bytes) -> None:
    """The control: the same raw handshake with a valid name gets its 101."""
    stream = await connect_socket(port)
    async with stream:
        await stream.send_all(handshake_request(target))
        with trio.fail_after(5):
            status, _, _ = await read_http_response(stream)
    assert status == 101
