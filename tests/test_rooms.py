"""Rooms, sessions and wire formats through trio_rooms.testing (in-memory streams)."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs
import pytest
import trio
import trio.testing

import trio_rooms
from trio_rooms import ConnectRequest, Message, Room, Rooms, RoomsConfig, Session, testing

from .chat_app import Chat, ChatRoom, ClientMsg, Renamed, SendChat, SetName, UserJoined, Whisper


async def test_testing_client_round_trip(rooms: Rooms[ChatRoom]) -> None:
    """The in-memory client sends typed client messages and receives typed server messages."""
    async with testing.connect(rooms, "lobby", query="name=ann") as ann:
        joined = await ann.receive()
        assert isinstance(joined, UserJoined)
        ann.send(Whisper(text="hello"))
        assert await ann.receive() == Chat(user_id=joined.user_id, name="ann", text="hello")


@pytest.mark.parametrize("wire", ["json", "msgpack"])
async def test_both_wire_formats_carry_typed_messages(
    rooms: Rooms[ChatRoom], wire: trio_rooms.WireFormat
) -> None:
    """A session speaks the format its client asked for, and keeps it."""
    async with testing.connect(rooms, "lobby", format=wire) as client:
        joined = await client.receive()
        assert isinstance(joined, UserJoined)
        room = await rooms.get("lobby")
        assert room.sessions[joined.user_id].format == wire
        client.send(SetName(name="zoe"))
        assert await client.receive() == Renamed(user_id=joined.user_id, name="zoe")


async def test_a_mixed_room_encodes_once_per_format(rooms: Rooms[ChatRoom]) -> None:
    """JSON and msgpack clients of one room both get a broadcast, each in its format."""
    async with (
        testing.connect(rooms, "mixed", format="json") as text_client,
        testing.connect(rooms, "mixed", format="msgpack") as binary_client,
    ):
        await text_client.receive()
        await text_client.receive()  # both joins
        await binary_client.receive()
        binary_client.send(SendChat(text="über"))
        via_text = await text_client.receive_frame()
        via_binary = await binary_client.receive_frame()
        assert isinstance(via_text, str)
        assert isinstance(via_binary, bytes)
        assert '"text":"über"' in via_text


async def test_a_text_frame_on_a_msgpack_session_is_invalid(rooms: Rooms[ChatRoom]) -> None:
    """A msgpack session answers a text frame with an error frame and stays open."""
    async with testing.connect(rooms, "lobby", format="msgpack") as client:
        await client.receive()
        client.send_frame('{"type": "setName", "name": "x"}')
        assert await client.receive_error() == "expected a binary (msgpack) frame, got a text frame"
        client.send(Whisper(text="ok"))
        assert isinstance(await client.receive(), Chat)


async def test_a_room_without_sessions_is_evicted_after_its_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """on_stop runs after room_idle_timeout without sessions; the next get makes a new room."""
    config = RoomsConfig(room_idle_timeout=30)
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
        async with testing.connect(rooms, "lobby") as client:
            await client.receive()
        room = await rooms.get("lobby")
        start = trio.current_time()
        await room.stopped.wait()
        assert trio.current_time() - start == pytest.approx(30)
        assert rooms.statistics().rooms == 0
        again = await rooms.get("lobby")
        assert again is not room
        assert again.started


async def test_a_session_arriving_resets_the_idle_timer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A room with a session is never evicted, however long it lives."""
    config = RoomsConfig(room_idle_timeout=5)
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
        room = await rooms.get("lobby")
        async with testing.connect(rooms, "lobby") as client:
            await client.receive()
            await trio.sleep(60)  # autojump_clock: virtual time, no real waiting  # sync-ok
            assert not room.stopped.is_set()
            client.send(Whisper(text="still here"))
            assert isinstance(await client.receive(), Chat)


class GatedRoom(ChatRoom):
    opened = trio.Event()

    async def on_start(self) -> None:
        await self.opened.wait()
        await super().on_start()


async def test_on_start_completes_before_any_session_is_admitted() -> None:
    """Connections to a room whose on_start is still running wait for it."""
    GatedRoom.opened = trio.Event()
    async with trio_rooms.open_rooms(GatedRoom) as rooms, trio.open_nursery() as nursery:
        admitted = trio.Event()

        async def join() -> None:
            async with testing.connect(rooms, "lobby") as client:
                await client.receive()
                admitted.set()

        nursery.start_soon(join)
        await trio.testing.wait_all_tasks_blocked()
        assert not admitted.is_set()
        GatedRoom.opened.set()
        await admitted.wait()


async def test_a_factory_with_dependencies_builds_rooms() -> None:
    """open_rooms takes any callable from name to room."""
    made: list[str] = []

    def factory(name: str) -> ChatRoom:
        made.append(name)
        return ChatRoom(name)

    async with trio_rooms.open_rooms(factory) as rooms:
        assert (await rooms.get("a")).name == "a"
        await rooms.get("a")
        await rooms.get("b")
    assert made == ["a", "b"]


async def test_an_invalid_room_name_is_rejected_before_the_factory_runs(
    rooms: Rooms[ChatRoom],
) -> None:
    """Rooms.get validates the name first."""
    with pytest.raises(trio_rooms.RoomNameError):
        await rooms.get("../etc")
    with pytest.raises(ValueError, match="invalid room name"):
        await rooms.get("")
    assert rooms.statistics().rooms == 0


def test_a_session_without_type_arguments_fails_at_class_creation() -> None:
    """Subclassing Session without its type arguments is a TypeError."""
    with pytest.raises(TypeError, match=r"must subclass Session\[Data, ServerMsg, ClientMsg\]"):

        class Bare(Session):  # pyright: ignore[reportMissingTypeArgument, reportUnusedClass]
            pass


def test_a_non_attrs_message_fails_at_class_creation() -> None:
    """A message type that is not an attrs Message is a TypeError."""

    class NotAttrs(Message):
        pass

    with pytest.raises(TypeError, match=r"must be attrs classes deriving from trio_rooms\.Message"):

        class Bad(Session[None, NotAttrs, SendChat]):  # pyright: ignore[reportUnusedClass]
            pass


DataT = TypeVar("DataT")


@attrs.frozen
class Pong(Message):
    text: str


class NamedSession(Session[DataT, Pong, ClientMsg], Generic[DataT]):
    """A generic intermediate class: its subclasses bind the data type."""

    async def on_message(self, message: ClientMsg) -> None:
        if isinstance(message, Whisper):
            self.send(Pong(text=message.text))


class CountingSession(NamedSession[int]):
    async def create_data(self, request: ConnectRequest) -> int:
        return 0


class CountingRoom(Room[CountingSession]):
    pass


async def test_messages_are_found_through_generic_intermediate_classes() -> None:
    """A session bound through a generic base gets its unions from the base's arguments."""
    assert CountingSession.message_classes()[1] == (Pong,)
    async with trio_rooms.open_rooms(CountingRoom) as rooms, testing.connect(rooms, "x") as client:
        client.send(Whisper(text="via base"))
        assert await client.receive() == Pong(text="via base")


def test_a_room_of_a_generic_or_abstract_session_fails_at_class_creation() -> None:
    """A Room must name a session class that can serve clients."""
    with pytest.raises(TypeError, match="cannot serve clients"):

        class Unbound(Room[NamedSession[int]]):  # pyright: ignore[reportUnusedClass]
            pass


def test_config_defaults() -> None:
    """Every limit has the documented default."""
    config = RoomsConfig()
    assert config.prefix == "/rooms"
    assert config.max_message_size == 1024 * 1024
    assert config.handshake_timeout == 10
    assert (config.ping_interval, config.ping_timeout) == (20, 20)
    assert (config.outbound_max_messages, config.outbound_max_bytes) == (256, 1024 * 1024)
    assert config.slow_consumer_timeout == 5
    assert config.inbound_max_messages == 32
    assert config.close_timeout == 5
    assert config.shutdown_timeout == 10
    assert config.room_idle_timeout == 30
    assert (config.camel_case, config.forbid_extra_keys) == (True, True)


@pytest.mark.parametrize(
    "options",
    [{"max_message_size": 0}, {"ping_interval": -1}, {"prefix": "rooms"}, {"prefix": "/rooms/"}],
)
def test_config_rejects_nonsense(options: dict[str, object]) -> None:
    """Limits must be positive and the prefix a clean path; the error names the field."""
    (name,) = options
    with pytest.raises(ValueError, match=name):
        RoomsConfig(**options)  # pyright: ignore[reportArgumentType]


async def test_wait_statistics_wakes_on_sessions_rooms_and_closes() -> None:
    """wait_statistics returns once sessions, rooms and closes reach what it waits for."""
    config = RoomsConfig(room_idle_timeout=0.01)
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
        assert (await rooms.wait_statistics(lambda stats: stats.rooms == 0)).sessions == 0
        async with trio.open_nursery() as nursery:

            async def two_sessions_then_gone() -> None:
                async with (
                    testing.connect(rooms, "lobby", query="name=ann"),
                    testing.connect(rooms, "lobby", query="name=bob"),
                ):
                    await rooms.wait_statistics(lambda stats: stats.sessions == 2)

            nursery.start_soon(two_sessions_then_gone)
            with trio.fail_after(5):
                seen = await rooms.wait_statistics(lambda stats: stats.sessions == 2)
                assert seen.rooms == 1
                closed = await rooms.wait_statistics(lambda stats: sum(stats.closes.values()) == 2)
                assert closed.sessions == 0
                # The idle room is evicted on its own; nothing else happens meanwhile.
                gone = await rooms.wait_statistics(lambda stats: stats.rooms == 0)
                assert gone.closes == {1000: 2}


async def test_get_makes_anew_a_room_evicted_before_its_creator_ran_again() -> None:
    """With an idle timeout shorter than a scheduling round, a new room can be evicted
    before ``get`` resumes: ``get`` then returns a fresh room, never a stopping one."""
    config = RoomsConfig(room_idle_timeout=1e-9)
    async with trio_rooms.open_rooms(ChatRoom, config=config) as rooms:
        for index in range(30):
            room = await rooms.get(f"fleeting-{index}")
            assert not room.stopped.is_set()
