"""Create or resume a study with its spec snapshot, and keep its study-wide trial budget.

The budget is held as queued (WAITING) trials: launching a study for N trials makes sure N
trials exist that count, and workers only ever run queued trials. Claiming a queued trial
is atomic in the storage, so any number of workers on any number of hosts finish exactly N
trials, never more. A trial whose worker died is re-queued by Optuna's retry callback; the
dead attempt is then "superseded" and no longer counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError, SpecError, StudyConflictError
from hpo.spec import StudySpec, spec_from_dict
from hpo.storage import mask_url, study_lock

SPEC_ATTR = "hpo_spec"  # study user attr: the validated spec, as JSON-able dict
BUDGET_ATTR = "hpo_trials"  # study user attr: the study-wide trial budget
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class Budget:
    """Where a study stands against its trial budget (superseded attempts left out)."""

    target: int
    states: Counter[TrialState]

    @property
    def finished(self) -> int:
        return sum(self.states[s] for s in FINISHED)

    @property
    def pending(self) -> int:
        return self.states[TrialState.WAITING] + self.states[TrialState.RUNNING]

    @property
    def done(self) -> bool:
        return self.pending == 0


def superseded_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed attempts that were re-queued (their retry counts instead)."""
    numbers: set[int] = set()
    for trial in trials:
        numbers.update(trial.system_attrs.get("retry_history", []))
    return numbers


def counted_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count against the budget: all but superseded attempts."""
    superseded = superseded_numbers(trials)
    return [t for t in trials if t.number not in superseded]


def budget_of(study: optuna.Study) -> Budget:
    trials = study.get_trials(deepcopy=False)
    target = int(study.user_attrs.get(BUDGET_ATTR, 0))
    return Budget(target, Counter(t.state for t in counted_trials(trials)))


def open_study(
    storage: optuna.storages.RDBStorage, spec: StudySpec, *, trials: int | None = None
) -> optuna.Study:
    """Create the study or resume it; queue trials up to the budget.

    Raises StudyConflictError, before writing anything, if a study of that name exists with
    a different spec. Serialized across processes, so concurrent launches make one study.
    """
    target = trials if trials is not None else spec.trials
    if target < 1:
        raise HpoError(f"--trials must be >= 1, got {target}")
    with study_lock(storage, spec.name):
        existing = _stored_snapshot(storage, spec.name)
        if existing is not None:
            _check_same_experiment(existing, spec, storage)
        study = optuna.create_study(
            study_name=spec.name,
            storage=storage,
            direction=spec.direction,
            load_if_exists=True,
        )
        if existing is None:
            study.set_user_attr(SPEC_ATTR, spec.to_dict())
        if int(study.user_attrs.get(BUDGET_ATTR, 0)) != target:
            study.set_user_attr(BUDGET_ATTR, target)
        queued = target - len(counted_trials(study.get_trials(deepcopy=False)))
        for _ in range(queued):
            study.enqueue_trial({})
    return study


def load_spec_from_storage(storage: optuna.storages.RDBStorage, study_name: str) -> StudySpec:
    """The spec stored with a study; HpoError naming what exists if there is none."""
    snapshot = _stored_snapshot(storage, study_name)
    if snapshot is None:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        known = ", ".join(names[:10]) or "none yet"
        raise HpoError(
            f"no hpo study named {study_name!r} in {mask_url(storage.url)} "
            f"(studies there: {known}); start one with `hpo launch study FILE`"
        )
    try:
        return spec_from_dict(snapshot, source=f"spec stored with study {study_name!r}")
    except SpecError as exc:
        raise HpoError(f"{exc} (stored by another hpo version?)") from None


def _stored_snapshot(storage: optuna.storages.RDBStorage, study_name: str) -> dict[str, Any] | None:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return storage.get_study_user_attrs(study_id).get(SPEC_ATTR)


def _check_same_experiment(
    snapshot: dict[str, Any], spec: StudySpec, storage: optuna.storages.RDBStorage
) -> None:
    stored = spec_from_dict(snapshot, source="stored spec")
    differing = _differing_keys(stored.identity(), spec.identity())
    if differing:
        raise StudyConflictError(
            f"study {spec.name!r} already exists in {mask_url(storage.url)} with a different "
            f"spec ({', '.join(differing)} differ); pass --name NEW_NAME to start a new "
            "study, or restore the original file to resume this one"
        )


def _differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            keys += _differing_keys(left, right, f"{prefix}{key}.")
        elif json.dumps(left, sort_keys=True) != json.dumps(right, sort_keys=True):
            keys.append(f"{prefix}{key}")
    return keys
