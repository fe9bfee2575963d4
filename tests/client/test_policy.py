"""The reconnect policy's backoff schedule and which closes it retries."""

from __future__ import annotations

import itertools
import random

import pytest

from trio_rooms.client import RETRIED_CLOSE_CODES, ReconnectPolicy


def test_without_jitter_the_delays_double_up_to_the_cap() -> None:
    """Each wait is the previous one times the multiplier, capped, for max_attempts waits."""
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=1.0, jitter=0, max_attempts=6)
    assert list(policy.delays(random.Random(1))) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_jitter_scales_each_delay_down_by_at_most_its_fraction() -> None:
    """With a seeded RNG the schedule is reproducible and within [1 - jitter, 1] of the base."""
    policy = ReconnectPolicy(initial_delay=1.0, max_delay=8.0, multiplier=2.0, jitter=0.5)
    first = list(itertools.islice(policy.delays(random.Random(42)), 10))
    again = list(itertools.islice(policy.delays(random.Random(42)), 10))
    assert first == again
    bases = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    for delay, base in zip(first, bases, strict=True):
        assert base / 2 <= delay <= base
    assert len(set(first)) == len(first)  # jittered, not constant


def test_forever_never_ends_and_never_overflows() -> None:
    """max_attempts=None yields forever; huge attempt numbers stay at the cap."""
    policy = ReconnectPolicy(max_delay=5.0, jitter=0)
    assert len(list(itertools.islice(policy.delays(), 2000))) == 2000
    assert policy.delay(10**6, random.Random(0)) == 5.0


def test_zero_attempts_never_reconnects() -> None:
    """max_attempts=0 gives an empty schedule."""
    assert list(ReconnectPolicy(max_attempts=0).delays()) == []


@pytest.mark.parametrize(
    "options",
    [
        {"initial_delay": 0},
        {"max_delay": -1},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"max_attempts": -1},
        {"initial_delay": 2.0, "max_delay": 1.0},
    ],
)
def test_invalid_policies_are_refused(options: dict[str, float]) -> None:
    """A policy that is not bounded and increasing raises ValueError."""
    with pytest.raises(ValueError, match=r"must be|less than"):
        ReconnectPolicy(**options)  # pyright: ignore[reportArgumentType] - parametrised kwargs


def test_only_going_away_lost_restart_and_try_again_are_retried() -> None:
    """1001, 1006, 1012 and 1013 are retried; policy and normal closes are not."""
    assert {1001, 1006, 1012, 1013} == RETRIED_CLOSE_CODES
    for code in (1000, 1003, 1008, 1009, 1011, 4001):
        assert not ReconnectPolicy.retries(code)
