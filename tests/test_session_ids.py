"""Session ids: unguessable, URL-safe and never handed out twice, across processes too."""

from __future__ import annotations

import os
import re

from trio_rooms._core import tokens


def test_session_ids_are_24_url_safe_characters_and_all_distinct() -> None:
    """5,000 ids (many draws of the random source) are distinct, each 24 URL-safe characters."""
    ids = [tokens.session_id() for _ in range(5_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", session_id) for session_id in ids)


def test_a_forked_child_draws_ids_of_its_own() -> None:
    """After a fork, the child's next id is not the one its parent hands out next."""
    tokens.session_id()  # the parent holds ids drawn ahead
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            os.write(write, tokens.session_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        childs = pipe.read().decode()
    os.waitpid(child, 0)
    assert len(childs) == 24
    assert childs != tokens.session_id()
