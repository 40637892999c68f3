"""Reading a comparison back from the storage, as plain data for the statistics and plots.

A comparison ("group") is one study per (arm, seed), an arm being a sampler with a pruner.
Each study carries user attrs naming its group, arm, sampler, pruner and seed (written by
hpo.compare.run); that is how `hpo report GROUP` finds them again, whoever ran them.
Studies of an hpo version before arms have no arm attr: their arm is their sampler.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.compare.hypervolume import hypervolume_curve, scale_of
from hpo.errors import HpoError
from hpo.storage._optuna import study_id
from hpo.storage.urls import mask_url
from hpo.study.records import BUDGET_ATTR, SPEC_ATTR, counted_trials

GROUP_ATTR = "hpo_compare_group"  # study user attr: the comparison this study belongs to
SAMPLER_ATTR = "hpo_sampler"  # study user attr: the sampler of this arm
SEED_ATTR = "hpo_seed"  # study user attr: the seed index (0, 1, ...) within the group
ARM_ATTR = "hpo_arm"  # study user attr: the arm's label, `tpe` or `tpe+hyperband`
PRUNER_ATTR = "hpo_pruner"  # study user attr: the pruner the arm ran with (resolved)
TRAIN_SECONDS_ATTR = "train_seconds"  # trial user attr (hpo.training.objective): training wall time


@dataclass(frozen=True)
class TrialRecord:
    """What the statistics and plots need of one trial, as plain data."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None  # objective value; None unless COMPLETE
    seconds: float  # wall time of the trial (start to finish), the compute it cost
    params: dict[str, Any]
    attrs: dict[str, Any]  # diag_* and other user attrs
    # A multi-objective trial's metric values, when COMPLETE and feasible (else None); its
    # `value` is then the study's hypervolume after it (hpo.compare.hypervolume).
    values: tuple[float, ...] | None = None
    started: float | None = None  # POSIX seconds the trial started (runs.csv's wall time)
    finished: float | None = None  # POSIX seconds it finished (runs.csv's order)
    last_value: float | None = None  # the last reported metric: `value`, or a pruned one's

    @property
    def compute(self) -> float:
        """Training seconds the trial cost: its `train_seconds` attr, recorded by completed
        and pruned trials, else (a trial that failed before recording it) its wall time."""
        recorded = self.attrs.get(TRAIN_SECONDS_ATTR)
        if isinstance(recorded, int | float) and math.isfinite(recorded) and recorded >= 0:
            return float(recorded)
        return self.seconds


@dataclass(frozen=True)
class StudyRun:
    name: str
    study_id: int
    arm: str  # label: `tpe`, `tpe+hyperband`
    sampler: str
    pruner: str | None  # None: a study from before arms, whose pruner was not recorded
    seed: int
    trials: list[TrialRecord]  # finished trials in trial-number order


@dataclass(frozen=True)
class Comparison:
    group: str
    direction: str
    metric: str
    budget: int  # trial budget per study
    spec: dict[str, Any]  # spec snapshot of the first study (the others: sampler, pruner)
    runs: list[StudyRun]
    # Multi-objective: the hypervolume's reference point, in words; "" for one objective
    reference: str = ""

    @property
    def arms(self) -> list[str]:
        return list(dict.fromkeys(r.arm for r in self.runs))

    @property
    def samplers(self) -> list[str]:
        return list(dict.fromkeys(r.sampler for r in self.runs))

    def runs_of(self, arm: str) -> list[StudyRun]:
        return [r for r in self.runs if r.arm == arm]


def list_groups(storage: optuna.storages.BaseStorage) -> list[str]:
    groups = {s.user_attrs.get(GROUP_ATTR) for s in optuna.get_all_study_summaries(storage)}
    return sorted(g for g in groups if g)


def arm_of(user_attrs: dict[str, Any]) -> str:
    return str(user_attrs.get(ARM_ATTR, user_attrs[SAMPLER_ATTR]))


def load_comparison(storage: optuna.storages.RDBStorage, group: str) -> Comparison:
    """Every study of `group`, ordered by arm (as first run) then seed."""
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
    order = list(dict.fromkeys(arm_of(s.user_attrs) for s in summaries))
    summaries.sort(key=lambda s: (order.index(arm_of(s.user_attrs)), s.user_attrs[SEED_ATTR]))
    runs = []
    for s in summaries:
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        finished = [t for t in counted_trials(study.get_trials()) if t.state.is_finished()]
        runs.append(
            StudyRun(
                name=s.study_name,
                study_id=study_id(s),
                arm=arm_of(s.user_attrs),
                sampler=s.user_attrs[SAMPLER_ATTR],
                pruner=s.user_attrs.get(PRUNER_ATTR),
                seed=int(s.user_attrs[SEED_ATTR]),
                trials=[_record(t) for t in sorted(finished, key=lambda t: t.number)],
            )
        )
    first = summaries[0]
    spec = first.user_attrs.get(SPEC_ATTR, {})
    comparison = Comparison(
        group=group,
        direction=first.directions[0].name.lower(),
        metric=spec.get("metric", "value"),
        budget=int(first.user_attrs.get(BUDGET_ATTR, 0)),
        spec=spec,
        runs=runs,
    )
    if len(first.directions) > 1:
        return by_hypervolume(comparison, [d.name == "MAXIMIZE" for d in first.directions])
    return comparison


def by_hypervolume(comparison: Comparison, maximize: list[bool]) -> Comparison:
    """A multi-objective comparison read as one of hypervolume (maximized): each trial's
    value becomes its study's hypervolume after it, under one reference point for every
    study of the comparison (hpo.compare.hypervolume says which)."""
    metrics = tuple(
        comparison.spec.get("metrics") or [f"objective {i}" for i in range(len(maximize))]
    )
    points = [t.values for r in comparison.runs for t in r.trials if t.values is not None]
    scale = scale_of(metrics, maximize, points)
    runs = []
    for run in comparison.runs:
        curve = hypervolume_curve([t.values for t in run.trials], scale)
        trials = [
            dataclasses.replace(t, value=volume if t.state == "COMPLETE" else None)
            for t, volume in zip(run.trials, curve, strict=True)
        ]
        runs.append(dataclasses.replace(run, trials=trials))
    return dataclasses.replace(
        comparison,
        direction="maximize",
        metric="hypervolume",
        runs=runs,
        reference=scale.describe(),
    )


def _record(trial: FrozenTrial) -> TrialRecord:
    seconds = 0.0
    if trial.datetime_start and trial.datetime_complete:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    values = trial.values if trial.state == TrialState.COMPLETE else None
    if values is not None and not all(map(math.isfinite, values)):
        values = None
    multi = values is not None and len(values) > 1
    feasible = all(c <= 0 for c in trial.constraints.values())
    value = None if values is None or multi else values[0]
    last = value  # runs.csv's value: a pruned trial's last reported one
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        last = trial.intermediate_values[max(trial.intermediate_values)]
    return TrialRecord(
        trial.number,
        trial.state.name,
        value,
        seconds,
        dict(trial.params),
        dict(trial.user_attrs),
        values=tuple(values) if multi and feasible else None,
        started=trial.datetime_start.timestamp() if trial.datetime_start else None,
        finished=trial.datetime_complete.timestamp() if trial.datetime_complete else None,
        last_value=last if last is None or math.isfinite(last) else None,
    )


def importances_by_arm(
    storage: optuna.storages.RDBStorage, comparison: Comparison
) -> dict[str, dict[str, float]]:
    """Optuna's fANOVA importances per arm, on the completed trials of all its seeds.

    Pooling the seeds gives the evaluator several hundred trials instead of a few dozen,
    which is what makes its random forest stable; seed 0 keeps the result reproducible.
    """
    out: dict[str, dict[str, float]] = {}
    if comparison.reference:  # multi-objective: a trade-off has no one value to explain
        return out
    for arm in comparison.arms:
        pooled = optuna.create_study(direction=comparison.direction)
        for run in comparison.runs_of(arm):
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
                out[arm] = dict(
                    optuna.importance.get_param_importances(pooled, evaluator=evaluator)
                )
            except (RuntimeError, ValueError):  # e.g. every trial has the same value
                continue
    return out
