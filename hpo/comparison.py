"""Sampler comparisons in the storage: derive the studies, run them, read them back.

A comparison ("group") is one study per (sampler, seed), derived from one study file with
only the sampler's name and seed changed, so data split, training budget, pruner, search
space and trial budget are identical. Each study carries user attrs naming its group,
sampler and seed; that is how `hpo report GROUP` finds them again. Running is resumable
for free: `open_study` only tops up what is missing, and finished studies are skipped.

The statistics live in hpo.compare (pure functions); this module only touches storage.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError
from hpo.launch import WorkerPlan, run_local_workers
from hpo.samplers import SAMPLERS
from hpo.spec import SamplerSpec, StudySpec, spec_from_dict
from hpo.storage import mask_url
from hpo.study import SPEC_ATTR, Budget, budget_of, counted_trials, open_study

GROUP_ATTR = "hpo_compare_group"  # study user attr: the comparison this study belongs to
SAMPLER_ATTR = "hpo_sampler"  # study user attr: the sampler of this arm
SEED_ATTR = "hpo_seed"  # study user attr: the seed index (0, 1, ...) within the group


@dataclass(frozen=True)
class Arm:
    """One study of a comparison."""

    group: str  # the comparison: the study file's study name
    sampler: str
    seed: int  # seed index within the group; the sampler seed is base seed + this
    spec: StudySpec


def parse_samplers(text: str) -> list[str]:
    """'random,tpe' -> ['random', 'tpe']; HpoError on an unknown or repeated name."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise HpoError("--samplers is empty; give e.g. random,tpe")
    for name in names:
        if name not in SAMPLERS:
            raise HpoError(
                f"unknown sampler {name!r} in --samplers; choose from: {', '.join(SAMPLERS)}"
            )
    if len(set(names)) != len(names):
        raise HpoError(f"--samplers repeats a name: {text}")
    return names


def study_name(group: str, sampler: str, seed: int) -> str:
    return f"{group}-{sampler}-s{seed}"


def derive_arms(spec: StudySpec, samplers: Sequence[str], seeds: int) -> list[Arm]:
    """One spec per (seed, sampler), seeds outermost so a partial run stays balanced.

    Sampler options of the file (e.g. TPE's n_startup_trials) go only to the sampler they
    were written for: other samplers do not accept them.
    """
    if seeds < 1:
        raise HpoError(f"--seeds must be >= 1, got {seeds}")
    arms = []
    for seed in range(seeds):
        for sampler in samplers:
            options = dict(spec.sampler.options) if sampler == spec.sampler.name else {}
            derived = dataclasses.replace(
                spec,
                name=study_name(spec.name, sampler, seed),
                sampler=SamplerSpec(sampler, spec.sampler.seed + seed, options),
            )
            # Round-trip through the validator: the derived spec is what workers rebuild.
            derived = spec_from_dict(derived.to_dict(), source=f"derived spec {derived.name}")
            arms.append(Arm(spec.name, sampler, seed, derived))
    return arms


@dataclass
class ComparisonProgress:
    """Per-sampler trials done and best value so far, fed by the running studies."""

    direction: str
    budget: dict[str, int]  # sampler -> trials in all its studies
    done: dict[str, dict[str, int]] = field(default_factory=dict)  # sampler -> study -> n
    best: dict[str, dict[str, float]] = field(default_factory=dict)  # sampler -> study -> best

    def update(self, arm: Arm, finished: int, best: float | None) -> None:
        self.done.setdefault(arm.sampler, {})[arm.spec.name] = finished
        if best is not None:
            self.best.setdefault(arm.sampler, {})[arm.spec.name] = best

    def rows(self) -> list[tuple[str, int, int, float | None]]:
        """(sampler, trials done, trials budget, best over its studies)."""
        pick = max if self.direction == "maximize" else min
        out = []
        for sampler, budget in self.budget.items():
            bests = list(self.best.get(sampler, {}).values())
            done = sum(self.done.get(sampler, {}).values())
            out.append((sampler, done, budget, pick(bests) if bests else None))
        return out


def run_comparison(
    storage: optuna.storages.RDBStorage,
    storage_url: str,
    arms: Sequence[Arm],
    plans: list[WorkerPlan],
    *,
    trials: int,
    data_dir: str | None = None,
    on_progress: Callable[[ComparisonProgress, Arm], None] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> list[int]:
    """Create or resume every arm's study and run the unfinished ones; returns exit codes.

    `extra_env` reaches every worker process (heartbeat, artifact folder), as for a launch.
    """
    direction = arms[0].spec.direction
    budget: dict[str, int] = {}
    for arm in arms:
        budget[arm.sampler] = budget.get(arm.sampler, 0) + trials
    progress = ComparisonProgress(direction, budget)
    studies = []
    for arm in arms:  # create all first: `hpo report` sees the whole group from the start
        study = open_study(storage, arm.spec, trials=trials)
        for key, value in (
            (GROUP_ATTR, arm.group),
            (SAMPLER_ATTR, arm.sampler),
            (SEED_ATTR, arm.seed),
        ):
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        b = budget_of(study)
        progress.update(arm, b.finished, _best(study))
        studies.append(study)
    codes: list[int] = []
    for arm, study in zip(arms, studies, strict=True):
        if budget_of(study).done:
            continue  # resumed run: nothing queued, no need to start workers

        def report(b: Budget, best: float | None, arm: Arm = arm) -> None:
            progress.update(arm, b.finished, best)
            if on_progress is not None:
                on_progress(progress, arm)

        codes += run_local_workers(
            study, storage_url, plans, data_dir=data_dir, on_progress=report, extra_env=extra_env
        )
    return codes


def _best(study: optuna.Study) -> float | None:
    try:
        return study.best_value
    except ValueError:
        return None


# ---------------------------------------------------------------- reading a group back


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
    summaries.sort(key=lambda s: s._study_id)
    order = list(dict.fromkeys(s.user_attrs[SAMPLER_ATTR] for s in summaries))
    summaries.sort(key=lambda s: (order.index(s.user_attrs[SAMPLER_ATTR]), s.user_attrs[SEED_ATTR]))
    runs = []
    for s in summaries:
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        finished = [t for t in counted_trials(study.get_trials()) if t.state.is_finished()]
        runs.append(
            StudyRun(
                name=s.study_name,
                study_id=s._study_id,
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
        budget=int(first.user_attrs.get("hpo_trials", 0)),
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
