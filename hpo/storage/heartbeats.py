"""Heartbeats of running trials, and failing the trials whose worker went silent.

One protocol, two kinds, chosen by the storage (`heartbeats_for`):

- `OptunaHeartbeats`, for relational storages (SQLite, PostgreSQL): Optuna's own. A beat
  writes the trial's heartbeat row stamped by the database, and a trial is stale when the
  database's clock says its last beat is older than the grace period: one clock, no skew.
- `AttrHeartbeats`, for storages without Optuna's heartbeat (the gRPC storage proxy,
  `hpo proxy`): a beat writes the trial's system attr `hpo_beat`, a value that changes with
  every beat (this worker's name and a counter). A watching worker remembers, per RUNNING
  trial, the value it last saw and when it first saw it on its *own* monotonic clock; a
  value unchanged for longer than the grace period means the owner is silent. Two hosts'
  clocks are never compared, so clock skew cannot fail a live trial nor keep a dead one.
  A trial claimed by a worker killed before its first beat has no value at all, and is
  timed the same way from the moment a watcher first sees it.

Either way a stale trial is failed and handed to the storage's stale-trial callback
(`hpo.storage.rdb.StaleTrialRetry`): the same re-queueing, retry cap and budget accounting,
so a retry resumes from its checkpoint whatever the storage. Only idle workers look, and
they read only the RUNNING trials, a set as small as the number of workers.
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from hpo.storage._optuna import trial_id as trial_id_of

log = logging.getLogger("hpo.storage.heartbeats")
BEAT_ATTR = "hpo_beat"  # trial system attr written by AttrHeartbeats: {"by", "n", "every"}
GRACE_BEATS = 2  # a trial silent for this many intervals is stale (Optuna's default too)

StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


def worker_name() -> str:
    """This process as host:pid: enough to find its log, or to kill it."""
    return f"{platform.node()}:{os.getpid()}"


class Heartbeats(Protocol):
    """What the worker needs from a heartbeat kind."""

    @property
    def interval(self) -> int | None:
        """Seconds between beats of a running trial; None: heartbeats are off."""

    def before_claim(self, trial_id: int) -> None:
        """Called just before a queued trial is claimed (see OptunaHeartbeats)."""

    def beat(self, trial_id: int) -> None:
        """One beat, without a retry loop of its own: the heartbeat thread beats again."""

    def fail_stale(self, study: optuna.Study) -> None:
        """Fail the study's silent RUNNING trials and re-queue them (the stale callback)."""


@dataclass
class OptunaHeartbeats:
    """Optuna's heartbeat table, for storages that have it (RDBStorage and its cache)."""

    storage: Any  # an RDBStorage, Optuna's per-process cache of one, or a look-alike

    @property
    def interval(self) -> int | None:
        return self.storage.get_heartbeat_interval()

    def before_claim(self, trial_id: int) -> None:
        # Optuna never finds a RUNNING trial stale if it has no heartbeat at all, so a
        # worker killed between its claim and its first beat would leave the trial RUNNING
        # forever. This beat, a moment before the claim, is also the trial's first; beating
        # a queued trial is harmless.
        self.storage.record_heartbeat(trial_id)

    def beat(self, trial_id: int) -> None:
        # hpo's storage offers a beat that does not wait out an outage; others beat plainly.
        once = getattr(self.storage, "record_heartbeat_once", self.storage.record_heartbeat)
        once(trial_id)

    def fail_stale(self, study: optuna.Study) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


@dataclass
class AttrHeartbeats:
    """Beats as a trial system attr; staleness judged on the watcher's own clock."""

    storage: BaseStorage
    every: int  # seconds between this worker's beats
    on_stale: StaleCallback | None = None  # re-queues a failed stale trial
    clock: Callable[[], float] = time.monotonic  # the watcher's clock; tests pass their own
    me: str = field(default_factory=worker_name)
    _beats: int = 0  # beats this process sent, all trials together: each value is new
    _seen: dict[int, tuple[Any, float]] = field(default_factory=dict)  # id: (value, since)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def interval(self) -> int | None:
        return self.every

    def before_claim(self, trial_id: int) -> None:
        """Nothing: a RUNNING trial without a beat is timed from when a watcher sees it."""

    def beat(self, trial_id: int) -> None:
        with self._lock:
            self._beats += 1
            value = {"by": self.me, "n": self._beats, "every": self.every}
        self.storage.set_trial_system_attr(trial_id, BEAT_ATTR, value)

    def stale(self, running: Iterable[FrozenTrial]) -> list[int]:
        """Ids of the `running` trials whose beat has not changed for the grace period.

        Remembers what it saw; trials no longer running are forgotten, so the memory stays
        as small as the RUNNING set.
        """
        now = self.clock()
        stale: list[int] = []
        seen: dict[int, tuple[Any, float]] = {}
        with self._lock:
            for trial in running:
                key = trial_id_of(trial)
                value = trial.system_attrs.get(BEAT_ATTR)
                last = self._seen.get(key)
                since = last[1] if last is not None and last[0] == value else now
                seen[key] = (value, since)
                if now - since > self.grace(value):
                    stale.append(key)
            self._seen = seen
        return stale

    def grace(self, value: Any) -> float:
        """Seconds of silence that make a trial stale: two of the slower of our interval
        and the one its owner declared (workers started with different --heartbeat)."""
        declared = value.get("every", 0) if isinstance(value, dict) else 0
        every = max(self.every, declared if isinstance(declared, int | float) else 0)
        return GRACE_BEATS * every

    def fail_stale(self, study: optuna.Study) -> None:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        failed = []
        for key in self.stale(running):
            try:
                # Atomic in the storage: of several watchers, one fails it.
                if self.storage.set_trial_state_values(key, state=TrialState.FAIL):
                    failed.append(key)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # it finished, or another watcher failed it, meanwhile
        for key in failed:
            log.warning("trial id %d sent no heartbeat for its grace period: failed", key)
            if self.on_stale is not None:
                with warnings.catch_warnings():  # Optuna's retry callback is experimental
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    self.on_stale(study, copy.deepcopy(self.storage.get_trial(key)))


@dataclass
class NoHeartbeats:
    """Heartbeats off (a storage with neither kind, such as Optuna's in-memory one)."""

    interval: int | None = None

    def before_claim(self, trial_id: int) -> None:
        pass

    def beat(self, trial_id: int) -> None:
        pass

    def fail_stale(self, study: optuna.Study) -> None:
        pass


# One per storage object: AttrHeartbeats remembers what it saw between an idle worker's polls.
_MADE: weakref.WeakKeyDictionary[Any, Heartbeats] = weakref.WeakKeyDictionary()
_MADE_LOCK = threading.Lock()


def heartbeats_for(storage: Any) -> Heartbeats:
    """The heartbeat kind of `storage`, the same object for the same storage.

    Optuna's where the storage has it (`get_heartbeat_interval`); hpo's attr kind where the
    storage declares an interval of its own (`heartbeat_interval`: hpo.storage.proxy_client);
    none otherwise.
    """
    with _MADE_LOCK:
        found = _MADE.get(storage)
        if found is None:
            found = _make(storage)
            _MADE[storage] = found
        return found


def _make(storage: Any) -> Heartbeats:
    if hasattr(storage, "get_heartbeat_interval"):
        return OptunaHeartbeats(storage)
    every = getattr(storage, "heartbeat_interval", None)
    if every is None:
        return NoHeartbeats()
    return AttrHeartbeats(storage, every, on_stale=getattr(storage, "stale_trial_callback", None))
