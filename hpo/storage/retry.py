"""Storage calls that wait out an outage: the backoff loop the database's calls and the
proxy's share, and how long they wait (HPO_DB_RETRY_SECONDS)."""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hpo.errors import StorageError

# How long a storage call keeps retrying while the database is unreachable (a restart, a
# failover) before the worker gives up with one line; env HPO_DB_RETRY_SECONDS overrides.
DB_RETRY_SECONDS = 300.0
_T = TypeVar("_T")


FIRST_DELAY = 0.25  # seconds before the first retry; doubled each time up to MAX_DELAY
MAX_DELAY = 8.0  # the longest wait between two retries
JITTER = 0.5  # each wait is drawn from [1 - JITTER, 1] times the doubled one


def backoff_delays(
    seconds: float,
    *,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[float]:
    """Backoff delays between retries, for `seconds` in all: 0.25 s doubling up to 8 s, each
    drawn at random between half of that and all of it, so that the workers one outage cut
    off do not all retry at the same instants when it ends. The caller sleeps each delay;
    none is yielded that would end past the deadline."""
    rng = rng or random.Random()
    deadline = clock() + seconds
    base = FIRST_DELAY
    while True:
        delay = base * rng.uniform(1 - JITTER, 1)
        if clock() + delay > deadline:
            return
        yield delay
        base = min(base * 2, MAX_DELAY)


def retrying(
    method: Callable[..., _T],
    name: str,
    *,
    retryable: Callable[[BaseException], bool],
    give_up: Callable[[Any, BaseException], str],
    warn: Callable[[Any, str, BaseException, float], None],
) -> Callable[..., _T]:
    """`method` of a storage, retried with backoff while `retryable(error)`, for the
    storage's `retry_seconds`; then StorageError with `give_up(storage, error)`.

    A state change whose commit arrived but whose answer was lost is recognised on the
    retry (the storage's `_already_set`). The database's calls (below) and the proxy's
    (hpo.storage.proxy_client) share this loop; only what counts as "away" and the words differ.
    """

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> _T:
        delays = backoff_delays(self.retry_seconds)
        attempt = 0
        while True:
            try:
                if attempt and name == "set_trial_state_values":
                    done = self._already_set(*args, **kwargs)
                    if done is not None:
                        return done  # type: ignore[return-value]
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not retryable(exc):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise StorageError(give_up(self, exc)) from None
                warn(self, name, exc, delay)
            time.sleep(delay)
            attempt += 1

    return call


# Optuna's storage calls that reach the database (or the proxy) and are retried while it
# is away; each storage kind adds its own on top.
STORAGE_CALLS: tuple[str, ...] = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_all_trials",
)


def retry_seconds() -> float:
    text = os.environ.get("HPO_DB_RETRY_SECONDS")
    if not text:
        return DB_RETRY_SECONDS
    try:
        return max(0.0, float(text))
    except ValueError:
        raise StorageError(f"HPO_DB_RETRY_SECONDS={text!r}: expected a number of seconds") from None
