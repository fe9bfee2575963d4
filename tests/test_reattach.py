"""`MovableConnection`: what a moved session's client is shown, and how it is counted.

No socket: the client's connection is a recorder, and frames are the bytes a session
writes (library frames from `trio_rooms._wire`, user messages as the codecs make them).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from trio_rooms._core.connection import ConnectionEnded
from trio_rooms._core.outbound import BINARY, PONG, TEXT, Frame, OutboundQueue
from trio_rooms._core.reattach import MovableConnection
from trio_rooms._core.request import ConnectRequest
from trio_rooms._wire import ResyncFrame, SessionFrame, SkippedFrame, encode_library_frame

COUNTED = b'{"type":"counted","stored":1,"local":1}'
REPLY = b'{"type":"counted","stored":2,"local":2,"$rid":7}'


class _Recorder:
    """A client's connection that keeps what it is written, and its close."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def attach(self, outbound: OutboundQueue) -> None:
        outbound.direct = lambda frames: None

    async def receive(self) -> str | bytes:
        await trio.lowlevel.checkpoint()
        raise ConnectionEnded(1000, "", by_peer=True)

    async def send(self, frames: list[Frame]) -> None:
        await trio.lowlevel.checkpoint()
        self.written += [frame.payload for frame in frames]

    async def close(self, code: int, reason: str) -> None:
        await trio.lowlevel.checkpoint()
        self.closed = (code, reason)


def _request(query: str) -> ConnectRequest:
    return ConnectRequest(room="game", path="/rooms/game/websocket", query_string=query)


def _session(token: str, *, resumed: bool, replayed: int | None = None) -> Frame:
    frame = SessionFrame(id="s1", token=token, resumed=resumed, replayed=replayed)
    return Frame(TEXT, encode_library_frame("json", frame))


async def test_a_client_that_asked_for_nothing_sees_only_the_rooms_messages() -> None:
    """A client with neither resume nor seen is opened resumable and counting; it is shown
    no $session, $skipped or $resync, and a move resumes with the count of its frames."""
    recorder = _Recorder()
    movable = MovableConnection(recorder, _request("name=ann&resume=x"))
    plain = MovableConnection(recorder, _request("name=ann"))
    assert plain.request().query == {"name": "ann", "resume": "", "seen": "0"}
    assert not plain.movable
    skipped = Frame(TEXT, encode_library_frame("json", SkippedFrame(3)))
    resync = Frame(TEXT, encode_library_frame("json", ResyncFrame("gone")))
    await plain.send([_session("s1.a", resumed=False), Frame(TEXT, COUNTED), skipped])
    await plain.send([Frame(TEXT, REPLY), resync, Frame(PONG, b"")])
    assert recorder.written == [COUNTED, REPLY, b""]
    assert plain.movable
    assert plain.request().query == {"name": "ann", "resume": "s1.a", "seen": "4"}
    assert movable.request().query == {"name": "ann", "resume": "x"}  # as it asked


async def test_a_resumable_client_is_shown_each_move_and_its_new_token() -> None:
    """A client that resumes and counts sees the first $session and each move's, with the
    new token; its count starts at its own seen and goes on across the move."""
    recorder = _Recorder()
    movable = MovableConnection(recorder, _request("resume=s1.a&seen=5"))
    assert movable.request().query == {"resume": "s1.a", "seen": "5"}
    first = _session("s1.b", resumed=True, replayed=1)
    await movable.send([first, Frame(TEXT, COUNTED)])
    assert movable.request().query == {"resume": "s1.b", "seen": "6"}
    moved = _session("s1.c", resumed=True, replayed=0)
    await movable.send([moved, Frame(BINARY, b"\x81\xa4type\xa1x")])
    assert recorder.written == [first.payload, COUNTED, moved.payload, b"\x81\xa4type\xa1x"]
    assert movable.request().query == {"resume": "s1.c", "seen": "7"}


async def test_a_client_that_does_not_count_is_moved_without_a_replay() -> None:
    """A client that resumes by token without seen is moved with no seen (it cannot be
    replayed to), and is shown no replayed count."""
    recorder = _Recorder()
    movable = MovableConnection(recorder, _request("resume=s1.a"))
    await movable.send([_session("s1.b", resumed=True), Frame(TEXT, COUNTED)])
    assert movable.request().query == {"resume": "s1.b"}
    await movable.send([_session("s1.c", resumed=True, replayed=0)])
    assert recorder.written[-1] == _session("s1.c", resumed=True).payload


async def test_a_move_that_finds_no_session_closes_the_client_with_1012() -> None:
    """A move answered with a fresh session (the old one's record expired) shows the
    client nothing of it: the client is closed with 1012, the fresh session's writes fail."""
    recorder = _Recorder()
    movable = MovableConnection(recorder, _request("resume="))
    await movable.send([_session("s1.a", resumed=False)])
    fresh = Frame(TEXT, encode_library_frame("json", SessionFrame("s2", "s2.a", False)))
    with pytest.raises(trio.BrokenResourceError):
        await movable.send([fresh, Frame(TEXT, COUNTED)])
    assert recorder.closed == (1012, "the session could not be moved")
    assert recorder.written == [_session("s1.a", resumed=False).payload]
    assert not movable.movable


async def test_messages_the_lost_owner_never_got_are_read_first() -> None:
    """The messages handed back by a lost relay are received before the client's next."""
    movable = MovableConnection(_Recorder(), _request(""))
    movable.unread(["one", b"two"])
    assert [await movable.receive(), await movable.receive()] == ["one", b"two"]
    with pytest.raises(ConnectionEnded):
        await movable.receive()


class _Socket(_Recorder):
    """A recorder whose transport writes without waiting, until it is told it is full."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def attach(self, outbound: OutboundQueue) -> None:
        outbound.direct = self._direct

    def _direct(self, frames: list[Frame]) -> bytes | None:
        if self.full:
            return None
        self.written += [frame.payload for frame in frames]
        return b""


async def test_user_messages_are_written_directly_and_counted() -> None:
    """User messages and control frames go through the transport's direct write and
    count as written; a frame the socket does not take is not counted."""
    socket = _Socket()
    movable = MovableConnection(socket, _request("resume=s1.a&seen=2"))
    outbound = OutboundQueue(8, 1024, 1.0)
    movable.attach(outbound)
    await movable.send([_session("s1.b", resumed=True, replayed=0)])
    assert outbound.direct is not None
    assert outbound.direct([Frame(TEXT, COUNTED), Frame(PONG, b"")]) == b""
    assert outbound.direct([Frame(BINARY, b"\x81\xa4type\xa1x")]) == b""
    socket.full = True
    assert outbound.direct([Frame(TEXT, COUNTED)]) is None
    assert socket.written[1:] == [COUNTED, b"", b"\x81\xa4type\xa1x"]
    assert movable.request().query == {"resume": "s1.b", "seen": "4"}


async def test_library_frames_and_replies_are_left_to_send() -> None:
    """A library frame or a reply is not written directly (None: the writer sends it,
    through `send`, where a $session is kept and a reply is not counted)."""
    socket = _Socket()
    movable = MovableConnection(socket, _request(""))
    outbound = OutboundQueue(8, 1024, 1.0)
    movable.attach(outbound)
    assert outbound.direct is not None
    assert outbound.direct([Frame(TEXT, COUNTED), _session("s1.a", resumed=False)]) is None
    assert outbound.direct([Frame(TEXT, REPLY)]) is None
    assert socket.written == []
    await movable.send([_session("s1.a", resumed=False), Frame(TEXT, REPLY)])
    assert movable.request().query == {"resume": "s1.a", "seen": "0"}


class _Stream(_Recorder):
    """A recorder over a transport that cannot write without waiting."""

    def attach(self, outbound: OutboundQueue) -> None:
        pass


def test_a_transport_without_a_direct_write_gets_none() -> None:
    """Over a transport that cannot write without waiting, every frame goes through `send`."""
    outbound = OutboundQueue(8, 1024, 1.0)
    MovableConnection(_Stream(), _request("")).attach(outbound)
    assert outbound.direct is None


class _Watched(_Recorder):
    """A recorder its transport watches: a read without waiting takes what ``arrived`` has."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[str | bytes] = []
        self.readable: Callable[[], None] | None = None

    def watch(self, readable: Callable[[], None]) -> Callable[[], str | bytes] | None:
        self.readable = readable
        return self.read_nowait

    def unwatch(self) -> None:
        self.readable = None

    def read_nowait(self) -> str | bytes:
        if not self.arrived:
            raise trio.WouldBlock
        return self.arrived.pop(0)


def test_a_watch_reads_what_was_kept_first_then_the_transports() -> None:
    """Watched, a moved client's kept messages are read first, then its transport's; with
    nothing kept the transport's own read is used; a transport that cannot watch gets none."""
    watched = _Watched()
    movable = MovableConnection(watched, _request(""))
    assert movable.watch(lambda: None) == watched.read_nowait
    movable.unwatch()
    assert watched.readable is None
    movable.unread(["kept", b"also"])
    watched.arrived.append("new")
    read = movable.watch(lambda: None)
    assert read is not None
    assert [read(), read(), read()] == ["kept", b"also", "new"]
    with pytest.raises(trio.WouldBlock):
        read()
    assert MovableConnection(_Recorder(), _request("")).watch(lambda: None) is None
