"""`[study] stop_after`: a study whose best value stops improving stops taking trials.

A worker records each trial it finishes under the study lock (RECORD_TRIAL, a LockedCall
that runs next to the database, or on the proxy) against PLATEAU_ATTR: the best value so
far, and how many finished trials in a row have not beaten it by more than `min_delta`. The
record reads the study's attrs and the trial's outcome and writes the attr back: the same
few statements per trial however long the study, never a scan of its trials (a study
without the attr, launched before it had stop_after, is replayed once). When the streak
reaches `stop_after`, STOPPED_ATTR records why, and no worker takes another trial: the one
that recorded it stops at once, the others when their running trial ends (their own record
answers so), idle ones at their next poll, and workers that join later at their start;
queued trials stay queued. A launch refuses a stopped study unless told to resume it
(`--resume-stopped`), which clears the stop and starts the count over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError
from hpo.storage import _optuna
from hpo.storage.locks import LockedCall, Request
from hpo.study.records import (
    FINISHED,
    PLATEAU_ATTR,
    SPEC_ATTR,
    STOPPED_ATTR,
    counted_trials,
    stop_reason,
)


@dataclass(frozen=True)
class Plateau:
    """Where a study stands against its stop rule."""

    best: float | None = None  # the best value so far; None before the first completed trial
    streak: int = 0  # finished trials since the last one that improved on it by > min_delta
    last: int | None = None  # id of the trial recorded last: a retried record is not counted

    def to_attr(self) -> dict[str, Any]:
        return {"best": self.best, "streak": self.streak, "last": self.last}


@dataclass(frozen=True)
class StopRule:
    """[study] stop_after and min_delta, with the direction they are judged in."""

    stop_after: int
    min_delta: float
    maximize: bool

    @property
    def reason(self) -> str:
        delta = f" (min_delta {self.min_delta:g})" if self.min_delta else ""
        return f"no improvement in {self.stop_after} trials{delta}"


def advance(plateau: Plateau, state: TrialState, value: float | None, rule: StopRule) -> Plateau:
    """The plateau after one more finished trial: a completed trial that beats the best
    value by more than min_delta starts the count over; any other adds one."""
    if state != TrialState.COMPLETE or value is None or math.isnan(value):
        return Plateau(plateau.best, plateau.streak + 1)
    if plateau.best is None:
        return Plateau(value, 0)
    gain = value - plateau.best if rule.maximize else plateau.best - value
    best = max(value, plateau.best) if rule.maximize else min(value, plateau.best)
    return Plateau(best, 0 if gain > rule.min_delta else plateau.streak + 1)


def replay(trials: Sequence[FrozenTrial], rule: StopRule) -> Plateau:
    """The plateau of the finished trials, in the order they finished (retried attempts
    left out, as the budget leaves them out)."""
    finished = [t for t in counted_trials(trials) if t.state in FINISHED]
    finished.sort(key=lambda t: (t.datetime_complete or datetime.min, t.number))
    plateau = Plateau()
    for trial in finished:
        plateau = advance(plateau, trial.state, trial.value, rule)
    return plateau


def stop_rule(snapshot: Any) -> StopRule | None:
    """The stop rule of a stored spec snapshot (validated when stored); None: it has none."""
    if not isinstance(snapshot, Mapping) or snapshot.get("stop_after") is None:
        return None
    return StopRule(
        stop_after=int(snapshot["stop_after"]),
        min_delta=float(snapshot.get("min_delta") or 0.0),
        maximize=snapshot.get("direction") != "minimize",
    )


def record_trial(study: optuna.Study, storage: optuna.storages.BaseStorage, trial_id: int) -> str:
    """Count a trial this worker finished against the stop rule; why the study has stopped
    ("" while it runs on)."""
    request = {"study": study.study_name, "study_id": _optuna.study_id(study), "trial_id": trial_id}
    return str(storage.run_locked(RECORD_TRIAL, request)["stopped"])


def _record_locked(storage: optuna.storages.RDBStorage, request: Request) -> Request:
    """record_trial's work next to the database, under the study lock."""
    study_id, trial_id = int(request["study_id"]), int(request["trial_id"])
    attrs = storage.get_study_user_attrs(study_id)
    rule = stop_rule(attrs.get(SPEC_ATTR))
    plateau = _plateau(attrs.get(PLATEAU_ATTR))
    if rule is None or (plateau is not None and plateau.last == trial_id):
        return {"stopped": stop_reason(attrs) or ""}  # no rule; or a retried record
    number, state, value = _optuna.trial_outcome(storage, trial_id)
    if plateau is None:  # a launch writes one; without it (edited away), count from scratch
        plateau = replay(storage.get_all_trials(study_id, deepcopy=False), rule)
    else:
        plateau = advance(plateau, state, value, rule)
    # Counted after a stop too: trials that were running then finish, and their values
    # belong to the best a resumed study must beat.
    writes: dict[str, Any] = {
        PLATEAU_ATTR: Plateau(plateau.best, plateau.streak, trial_id).to_attr()
    }
    if stop_reason(attrs) is None and plateau.streak >= rule.stop_after:
        writes[STOPPED_ATTR] = {"reason": rule.reason, "trial": number, "at": time.time()}
    _optuna.write_study_user_attrs(storage, study_id, writes)
    return {"stopped": stop_reason({**attrs, **writes}) or ""}


def _plateau(stored: Any) -> Plateau | None:
    """The stored plateau; None if there is none (or it is not one: it is replayed)."""
    if not isinstance(stored, dict):
        return None
    best, streak, last = stored.get("best"), stored.get("streak"), stored.get("last")
    if not isinstance(streak, int) or not (best is None or isinstance(best, int | float)):
        return None
    return Plateau(None if best is None else float(best), streak, last)


def check_relaunch(study_name: str, attrs: Mapping[str, Any], *, resume: bool) -> dict[str, Any]:
    """What a launch of a stopped study writes: nothing unless it resumes it (the stop
    cleared, the count started over); HpoError, before anything is written, unless it does."""
    reason = stop_reason(attrs)
    if reason is None:
        return {}
    if not resume:
        at_trial = attrs[STOPPED_ATTR].get("trial")
        after = f" after trial {at_trial}" if isinstance(at_trial, int) else ""
        raise HpoError(
            f"study {study_name!r} {reason}{after}, so launching it again would run nothing; "
            "pass --resume-stopped to clear the stop and run the rest of its budget (the count "
            "starts over), or --name NEW_NAME for a new study"
        )
    plateau = _plateau(attrs.get(PLATEAU_ATTR)) or Plateau()
    return {STOPPED_ATTR: None, PLATEAU_ATTR: Plateau(plateau.best, 0, plateau.last).to_attr()}


def starting_plateau(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    snapshot: Mapping[str, Any],
    attrs: Mapping[str, Any],
) -> dict[str, Any]:
    """What a launch writes so that the first trial recorded has a plateau to count on: the
    finished trials replayed once (none in a new study); nothing if it has one or no rule."""
    rule = stop_rule(snapshot)
    if rule is None or _plateau(attrs.get(PLATEAU_ATTR)) is not None:
        return {}
    return {PLATEAU_ATTR: replay(storage.get_all_trials(study_id, deepcopy=False), rule).to_attr()}


def stopped_reason(study: optuna.Study) -> str | None:
    """Why the study stopped ("stopped: ..."), read from the storage now; None if it runs."""
    return stop_reason(study.user_attrs)


RECORD_TRIAL = LockedCall("RecordTrial", _record_locked)
