"""The RESP bytes `commit_arguments` makes for a commit, as a real redis-server reads them,
and the keys it takes from `RedisKeys.of_commit`.

A commit's arguments are encoded by hand (a frame's score and member in one piece, not
through `resp_command`), so a length or a count off by one would garble the script's
KEYS and ARGV: a script that returns them shows what Redis parsed.
"""

from __future__ import annotations

import pytest

from trio_rooms import RoomNameError
from trio_rooms._resp import open_resp
from trio_rooms.storage import Commit, LoggedFrame, RecordWrite, SessionRecord, StoredAlarm
from trio_rooms.storage._redis_commit import commit_arguments
from trio_rooms.storage._redis_encoding import encode_alarm, encode_record, pxat
from trio_rooms.storage._redis_keys import _CACHED_ROOMS, RedisKeys  # pyright: ignore[reportPrivateUsage] - its bound

from .redis_server import RedisServer

_ALARM = StoredAlarm(room="r", name="a", at=5.5)

#: The frames' bytes: none, bytes RESP uses, every byte.
_DATA = (b"", b"\r\n" * 200, bytes(range(256)))

#: Echoes what it was given: its KEYS, then its ARGV.
_ECHO = b"return {KEYS, ARGV}"


#: Seqs of as many digits (one format for the commit), and seqs that cross 10**9 (one each).
_SEQS = [
    pytest.param((1_700_000_000_000_000, 1_700_000_000_000_001, 1_700_000_000_000_002), id="same"),
    pytest.param((999_999_999, 1_000_000_000, 2**63 - 1), id="crossing"),
]


def _commit(seqs: tuple[int, ...]) -> Commit:
    """A commit with every kind of write, and frames of ``seqs``."""
    record = SessionRecord(
        room="r", session_id="s", data=b"{}", wire="json", token_hash=b"h", expires_at=9e9
    )
    return Commit(
        room="r",
        values={"k": b"v\r\n$3", "gone": None},
        alarms={"a": _ALARM, "b": None},
        records=[
            RecordWrite(record=record, expected_token_hash=b"old"),
            RecordWrite(record=record),
        ],
        frames=[LoggedFrame(seq, data) for seq, data in zip(seqs, _DATA, strict=True)],
        keep_frames=7,
        frames_expire_after=1.5,
        fence=42,
    )


#: Stream entries a commit may carry (`RelayedCommits`): bytes RESP must not misread.
_ENTRIES = [(b"p:relay:b", b"\r\n*1\r\n"), (b"p:relay:c", b"")]


@pytest.mark.parametrize("entries", [[], _ENTRIES], ids=["no entries", "entries"])
@pytest.mark.parametrize("seqs", _SEQS)
async def test_redis_reads_the_keys_and_arguments_of_a_commit_as_laid_out(
    redis_server: RedisServer, seqs: tuple[int, ...], entries: list[tuple[bytes, bytes]]
) -> None:
    """Redis gets every key and argument of a commit as laid out, whatever bytes they hold."""
    commit = _commit(seqs)
    count, arguments = commit_arguments(RedisKeys(b"p:"), commit, entries, 100)
    async with open_resp(redis_server.url, timeout=5.0) as connection:
        head = b"*%d\r\n$4\r\nEVAL\r\n$%d\r\n%b\r\n" % (count + 2, len(_ECHO), _ECHO)
        await connection.send(head)
        await connection.send(arguments)
        reply = await connection.reply()
    assert isinstance(reply, list)
    keys, argv = reply
    assert isinstance(keys, list)
    assert keys == [
        b"p:alarms:r",
        b"p:alarm-queue",
        b"p:state:r:k",
        b"p:state:r:gone",
        b"p:session:r:s",
        b"p:session:r:s",
        b"p:replay:r",
        *(stream for stream, _ in entries),
        b"p:fence:r",
    ]
    assert isinstance(argv, list)
    assert argv[:3] == [b"2", b"2", b"2"]
    assert argv[3:7] == [b"p", b"v\r\n$3", b"d", b""]
    assert argv[7:11] == [b"a", b"r a", encode_alarm(_ALARM), b"5.5"]
    assert argv[11:15] == [b"b", b"r b", b"", b""]
    record = commit.records[0].record
    stored = [encode_record(record), b"%d" % pxat(record.expires_at)]
    assert argv[15:23] == [b"1", b"old", *stored, b"0", b"", *stored]
    assert argv[23:26] == [b"3", b"7", b"1500"]
    frames = zip(seqs, _DATA, strict=True)
    expected = [(b"%d" % seq, seq.to_bytes(8, "big") + data) for seq, data in frames]
    assert argv[26:32] == [argument for pair in expected for argument in pair]
    assert argv[32:] == [b"%d" % len(entries), b"100", *(data for _, data in entries), b"42"]
    assert count == 1 + len(keys) + len(argv)


def test_a_commits_keys_are_made_once_per_room_and_stay_right_past_the_bound() -> None:
    """A room's commit keys are those its key methods make, kept or made again."""
    keys = RedisKeys(b"p:")
    rooms = [f"room{n}" for n in range(2 * _CACHED_ROOMS + 3)]
    for _ in range(2):  # the second time round, from what was kept (or made again)
        for room in rooms:
            expected = (keys.alarms(room), keys.alarm_queue, keys.log(room), keys.fence(room))
            assert keys.of_commit(room) == expected
    assert keys.of_commit("lobby") is keys.of_commit("lobby")
    for _ in range(2):  # a refused name is never kept
        with pytest.raises(RoomNameError):
            keys.of_commit("lobby:s1")
