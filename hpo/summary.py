"""What a study holds, extracted from the storage as plain data (no rendering here)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo.study import BUDGET_ATTR, SPEC_ATTR, counted_trials


@dataclass(frozen=True)
class StudySummary:
    name: str
    direction: str
    model: str | None  # None for studies hpo did not create
    budget: int | None
    states: Counter[str]
    best_value: float | None
    best: FrozenTrial | None = field(default=None, repr=False)

    @property
    def finished(self) -> int:
        return sum(self.states[s] for s in ("COMPLETE", "PRUNED", "FAIL"))


def summarize(study: optuna.Study) -> StudySummary:
    trials = counted_trials(study.get_trials(deepcopy=False))
    best = best_trial(study)
    spec = study.user_attrs.get(SPEC_ATTR) or {}
    return StudySummary(
        name=study.study_name,
        direction=study.direction.name.lower(),
        model=spec.get("model"),
        budget=study.user_attrs.get(BUDGET_ATTR),
        states=Counter(t.state.name for t in trials),
        best_value=best.value if best else None,
        best=best,
    )


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def summarize_storage(storage: optuna.storages.BaseStorage) -> list[StudySummary]:
    return [
        summarize(optuna.load_study(study_name=s.study_name, storage=storage))
        for s in sorted(optuna.get_all_study_summaries(storage), key=lambda s: s.study_name)
    ]


def trial_details(trial: FrozenTrial) -> dict[str, Any]:
    """The facts `hpo best` shows about a trial, as a flat dict."""
    return {
        "number": trial.number,
        "value": trial.value,
        "state": trial.state.name,
        "params": dict(trial.params),
        "user_attrs": dict(trial.user_attrs),
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
    }
