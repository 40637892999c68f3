"""Reading a comparison back from the storage, as plain data for the statistics and plots.

A comparison ("group") is one study per (sampler, seed). Each study carries user attrs
naming its group, sampler and seed (written by hpo.compare.run); that is how
`hpo report GROUP` finds them again, whoever ran them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo._optuna import study_id
from hpo.errors import HpoError
from hpo.records import BUDGET_ATTR, SPEC_ATTR, counted_trials
from hpo.storage import mask_url

GROUP_ATTR = "hpo_compare_group"  # study user attr: the comparison this study belongs to
SAMPLER_ATTR = "hpo_sampler"  # study user attr: the sampler of this arm
SEED_ATTR = "hpo_seed"  # study user attr: the seed index (0, 1, ...) within the group


@dataclass(frozen=True)
class TrialRecord:
    """What the statistics and plots need of one trial, as plain data."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None  # objective value; None unless COMPLETE
    seconds: float  # wall time of the trial (start to finish), the compute it cost
    params: dict[str, Any]
    attrs: dict[str, Any]  # diag_* and other user attrs


@dataclass(frozen=True)
class StudyRun:
    name: str
    study_id: int
    sampler: str
    seed: int
    trials: list[TrialRecord]  # finished trials in trial-number order


@dataclass(frozen=True)
class Comparison:
    group: str
    direction: str
    metric: str
    budget: int  # trial budget per study
    spec: dict[str, Any]  # spec snapshot of the first study (the others differ in sampler)
    runs: list[StudyRun]

    @property
    def samplers(self) -> list[str]:
        return list(dict.fromkeys(r.sampler for r in self.runs))

    def runs_of(self, sampler: str) -> list[StudyRun]:
        return [r for r in self.runs if r.sampler == sampler]


def list_groups(storage: optuna.storages.BaseStorage) -> list[str]:
    groups = {s.user_attrs.get(GROUP_ATTR) for s in optuna.get_all_study_summaries(storage)}
    return sorted(g for g in groups if g)


def load_comparison(storage: optuna.storages.RDBStorage, group: str) -> Comparison:
    """Every study of `group`, ordered by sampler (as first run) then seed."""
    summaries = [
        s
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if s.user_attrs.get(GROUP_ATTR) == group
    ]
    if not summaries:
        known = ", ".join(list_groups(storage)) or "none yet"
        raise HpoError(
            f"no comparison named {group!r} in {mask_url(storage.url)} (comparisons there: "
            f"{known}); start one with `hpo compare FILE`"
        )
    summaries.sort(key=study_id)
    order = list(dict.fromkeys(s.user_attrs[SAMPLER_ATTR] for s in summaries))
    summaries.sort(key=lambda s: (order.index(s.user_attrs[SAMPLER_ATTR]), s.user_attrs[SEED_ATTR]))
    runs = []
    for s in summaries:
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        finished = [t for t in counted_trials(study.get_trials()) if t.state.is_finished()]
        runs.append(
            StudyRun(
                name=s.study_name,
                study_id=study_id(s),
                sampler=s.user_attrs[SAMPLER_ATTR],
                seed=int(s.user_attrs[SEED_ATTR]),
                trials=[_record(t) for t in sorted(finished, key=lambda t: t.number)],
            )
        )
    first = summaries[0]
    spec = first.user_attrs.get(SPEC_ATTR, {})
    return Comparison(
        group=group,
        direction=first.direction.name.lower(),
        metric=spec.get("metric", "value"),
        budget=int(first.user_attrs.get(BUDGET_ATTR, 0)),
        spec=spec,
        runs=runs,
    )


def _record(trial: FrozenTrial) -> TrialRecord:
    seconds = 0.0
    if trial.datetime_start and trial.datetime_complete:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    value = trial.value if trial.state == TrialState.COMPLETE else None
    if value is not None and not math.isfinite(value):
        value = None
    return TrialRecord(
        trial.number, trial.state.name, value, seconds, dict(trial.params), dict(trial.user_attrs)
    )


def importances_by_sampler(
    storage: optuna.storages.RDBStorage, comparison: Comparison
) -> dict[str, dict[str, float]]:
    """Optuna's fANOVA importances per sampler, on the completed trials of all its seeds.

    Pooling the seeds gives the evaluator several hundred trials instead of a few dozen,
    which is what makes its random forest stable; seed 0 keeps the result reproducible.
    """
    out: dict[str, dict[str, float]] = {}
    for sampler in comparison.samplers:
        pooled = optuna.create_study(direction=comparison.direction)
        for run in comparison.runs_of(sampler):
            study = optuna.load_study(study_name=run.name, storage=storage)
            pooled.add_trials(
                [
                    t
                    for t in study.get_trials(states=(TrialState.COMPLETE,))
                    if t.value is not None and math.isfinite(t.value)
                ]
            )
        if len(pooled.trials) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
                out[sampler] = dict(
                    optuna.importance.get_param_importances(pooled, evaluator=evaluator)
                )
            except (RuntimeError, ValueError):  # e.g. every trial has the same value
                continue
    return out
