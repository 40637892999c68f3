"""hpo.storage.retry: the backoff every storage call shares, and how long it lasts."""

from __future__ import annotations

import random

import pytest

from hpo.errors import StorageError
from hpo.storage.retry import FIRST_DELAY, MAX_DELAY, backoff_delays, retry_seconds


def _slept(seconds: float, seed: int) -> list[float]:
    """The delays a caller would sleep, on a clock that each sleep moves on."""
    now = [100.0]
    delays = []
    for delay in backoff_delays(seconds, rng=random.Random(seed), clock=lambda: now[0]):
        delays.append(delay)
        now[0] += delay
    return delays


def test_backoff_doubles_with_jitter_within_the_time_given() -> None:
    delays = _slept(60.0, seed=0)
    base = FIRST_DELAY
    for delay in delays:
        assert base / 2 <= delay <= base
        base = min(base * 2, MAX_DELAY)
    assert 60.0 - MAX_DELAY < sum(delays) <= 60.0  # the time given, never more
    assert len(set(delays[-4:])) == 4  # at the cap too: no two workers in step
    assert _slept(60.0, seed=0) == delays  # the rng decides, nothing else
    others = _slept(60.0, seed=1)
    assert others != delays and sum(others) <= 60.0


def test_no_time_no_retry() -> None:
    assert _slept(0.0, seed=0) == []


def test_retry_seconds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_DB_RETRY_SECONDS", "12.5")
    assert retry_seconds() == 12.5
    monkeypatch.setenv("HPO_DB_RETRY_SECONDS", "abc")
    with pytest.raises(StorageError, match="HPO_DB_RETRY_SECONDS='abc': expected a number"):
        retry_seconds()
