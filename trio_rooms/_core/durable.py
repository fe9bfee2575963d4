"""``DurableRecord``: a session's stored record, which only its owner may write.

What survives a session's connection is its record in the `Storage`: its data, its
wire format and the hash of its resume token. Spending a token and every later write
are compare-and-sets on that hash, so of connections racing with one token exactly one
gets the session, and a session resumed elsewhere (even on another node) can neither
overwrite what the resumer stored nor make the spent token valid again.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast, final

import attrs

from .._errors import OwnershipLostError
from . import tokens
from .room_state import RoomState
from .storage import RecordWrite, ReplayCursor, SessionRecord, data_converter

__all__ = ["Claimed", "DurableRecord"]

_logger = logging.getLogger("trio_rooms")


@final
@attrs.frozen
class Claimed:
    """A resume that won its token: the session it names, as it was when spent."""

    session_id: str
    data: object
    wire: str
    issued: tokens.IssuedToken
    #: Its place in the room's replay log, as stored.
    replay: ReplayCursor | None = None
    #: The hash of the token spent: given back if the new one never reaches the client.
    spent_hash: bytes = b""


@final
class DurableRecord:
    """The stored side of one session: its token's hash and how its data is stored."""

    __slots__ = ("_data_type", "resume_window", "taken_over", "token_hash", "written")

    def __init__(self, data_type: object, resume_window: float) -> None:
        self._data_type = data_type
        self.resume_window = resume_window
        #: SHA-256 of the current token's secret; empty while not resumable.
        self.token_hash = b""
        #: Resumed on another connection: the record is not ours to write anymore.
        self.taken_over = False
        #: A record of this session was written (by `write`): there is one to delete.
        self.written = False

    def issue(self, session_id: str) -> tokens.IssuedToken:
        """A fresh token for a new resumable session (its hash is kept)."""
        issued = tokens.issue(session_id)
        self.token_hash = issued.token_hash
        return issued

    async def claim(self, state: RoomState, token: str) -> Claimed | None:
        """Spend ``token`` and take its session's record; None if it does not resume.

        The token is checked here (in constant time), then spent by the storage's
        compare-and-set on its hash, which only one of racing claims wins; the data is
        the record's as it was then. The claim carries the room's fencing token.

        Raises:
            OwnershipLostError: another node owns the room now (the token is not spent;
                the room stops here, as for a refused commit).
        """
        parts = tokens.split(token)
        if parts is None:
            return None
        session_id, secret = parts
        storage, room = state.storage, state.room
        record = await storage.load_session(room, session_id)
        if record is None or not tokens.verify(secret, record.token_hash, record.expires_at):
            return None
        issued = tokens.issue(session_id)
        try:
            claimed = await storage.claim_session(
                room,
                session_id,
                token_hash=record.token_hash,
                new_token_hash=issued.token_hash,
                expires_at=self._expires_at(),
                fence=state.fence,
            )
        except OwnershipLostError as exc:
            state.refused(exc)
            raise
        if claimed is None:
            return None  # another connection spent it first
        self.token_hash = issued.token_hash
        data = self._load_data(claimed.data)
        return Claimed(session_id, data, claimed.wire, issued, claimed.replay, record.token_hash)

    async def give_back(self, state: RoomState, claimed: Claimed) -> None:
        """The resume failed before its new token was sent: the spent one resumes again.

        Its client never learnt the new token, so the one it holds must stay valid (a
        room stopping, the client leaving during the resume). The same compare-and-set
        backwards: only the record still holding the new hash, which nobody else knows,
        is moved back. A failure is logged: the session is then lost to its client.
        """
        try:
            await state.storage.claim_session(
                state.room,
                claimed.session_id,
                token_hash=claimed.issued.token_hash,
                new_token_hash=claimed.spent_hash,
                expires_at=self._expires_at(),
                fence=state.fence,
            )
        except Exception:
            _logger.exception(
                "room %r: the token of session %s could not be given back after a failed resume",
                state.room,
                claimed.session_id,
            )
        self.taken_over = True  # its client's again: nothing more is written from here

    def record(
        self,
        room: str,
        session_id: str,
        data: object,
        wire: str,
        replay: ReplayCursor | None = None,
        longer: float = 0.0,
    ) -> SessionRecord:
        """The record of the session as it is now, expiring a resume window from now
        (and ``longer`` seconds more)."""
        return SessionRecord(
            replay=replay,
            room=room,
            session_id=session_id,
            data=data_converter.dumps(data, unstructure_as=self._data_type),
            wire=wire,
            token_hash=self.token_hash,
            expires_at=self._expires_at() + longer,
        )

    async def write(self, state: RoomState, record: SessionRecord) -> bool:
        """Commit ``record`` with the room's writes; False if the session was taken over.

        A resumable session writes only while the stored record holds its own hash
        (then nothing is written).
        """
        expected = self.token_hash or None
        self.written = True
        if await state.write_record(RecordWrite(record=record, expected_token_hash=expected)):
            return True
        self.taken_over = True
        return False

    def _expires_at(self) -> float:
        return time.time() + self.resume_window

    def _load_data(self, raw: bytes) -> object:
        data_type = self._data_type
        if data_type is None or data_type is type(None):
            return None
        return data_converter.loads(raw, cast("type[Any]", data_type))
