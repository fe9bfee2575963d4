"""A route body sent as many tiny chunks costs its size, not an object per chunk.

Chunked encoding lets a client cut a body into 1-byte chunks (6 bytes on the wire
each): kept as a list of its pieces, a body within ``max_message_size`` held about
40 bytes of objects per byte of it (a 1 MiB body, about 40 MiB, per connection).
Measured with tracemalloc: the peak of what is allocated while the request is served.
"""

from __future__ import annotations

import tracemalloc

import pytest
import trio

import trio_rooms
from trio_rooms import HttpRequest, Response, Room, RoomsConfig, route

from .chat_app import ChatSession
from .servers import Transport, start_server
from .sockets import connect_socket

PATIENCE = 20.0
CHUNKS = 100_000


class LengthRoom(Room[ChatSession]):
    @route.post("/length")
    async def length(self, request: HttpRequest) -> Response:
        return Response.text(200, str(len(request.body)))


# hypercorn hands a body on an ASGI message per chunk: 100,000 of them outlast the
# request timeout under tracemalloc (its 408 is the bound there).
@pytest.mark.embedded_only("hypercorn takes a message per chunk")
async def test_a_body_of_one_byte_chunks_costs_its_size(
    nursery: trio.Nursery, transport: Transport
) -> None:
    head = (
        b"POST /rooms/r/length HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
        b"connection: close\r\n\r\n"
    )
    request = head + b"1\r\nx\r\n" * CHUNKS + b"0\r\n\r\n"
    async with trio_rooms.open_rooms(LengthRoom, config=RoomsConfig()) as rooms:
        port = await start_server(nursery, transport, rooms)
        stream = await connect_socket(port)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            with trio.fail_after(PATIENCE):
                async with stream, trio.open_nursery() as sending:
                    sending.start_soon(stream.send_all, request)
                    answer = bytearray()
                    while chunk := await stream.receive_some(65536):
                        answer += chunk
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert answer.endswith(b"\r\n\r\n%d" % CHUNKS), answer
    # The body, its copy for the route, the parser's buffers: a few times its size.
    # As a list of pieces: about 40 times.
    assert peak < 8 * CHUNKS, peak
