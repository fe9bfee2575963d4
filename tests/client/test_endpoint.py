"""What the client puts on the request line and in ``Host``, from the URL it was given."""

from __future__ import annotations

import pytest

from trio_rooms.client._frames import parse_url


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("ws://127.0.0.1:8000/rooms/a/websocket", "127.0.0.1:8000"),
        ("ws://chat.example.com/rooms/a/websocket", "chat.example.com"),
        ("ws://chat.example.com:80/rooms/a/websocket", "chat.example.com"),
        ("wss://chat.example.com/rooms/a/websocket", "chat.example.com"),
        ("wss://chat.example.com:8443/rooms/a/websocket", "chat.example.com:8443"),
        ("ws://[::1]:9000/rooms/a/websocket", "[::1]:9000"),
    ],
)
def test_the_host_header_carries_the_port_unless_it_is_the_default(url: str, host: str) -> None:
    """``Host`` names the port the client connected to, unless it is the scheme's own."""
    assert parse_url(url).host_header == host
