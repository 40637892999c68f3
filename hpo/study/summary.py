"""What a study holds, extracted from the storage as plain data (no rendering here)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo.errors import HpoError
from hpo.storage import _optuna
from hpo.study.front import front_trials, is_multi_objective, metric_names
from hpo.study.records import BUDGET_ATTR, DIAG_PREFIX, SPEC_ATTR, counted_trials, stop_reason

CORRUPT_SPEC = "corrupt spec"  # the model shown for a study whose stored spec is unreadable


@dataclass(frozen=True)
class StudySummary:
    name: str
    direction: str
    model: str | None  # None for studies hpo did not create; CORRUPT_SPEC if unreadable
    budget: int | None
    states: Counter[str]
    best_value: float | None
    best: FrozenTrial | None = field(default=None, repr=False)
    stopped: str | None = None  # "stopped: no improvement in N trials"; None: not stopped
    # A multi-objective study: its metric names and feasible Pareto front (hpo.study.front)
    metrics: tuple[str, ...] = ()
    front: tuple[FrozenTrial, ...] = field(default=(), repr=False)

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    @property
    def finished(self) -> int:
        return sum(self.states[s] for s in ("COMPLETE", "PRUNED", "FAIL"))


def summarize(study: optuna.Study) -> StudySummary:
    """A study's summary; a study whose hpo records are unreadable still gets one."""
    trials = counted_trials(study.get_trials(deepcopy=False))
    best = best_trial(study)
    try:
        attrs: dict[str, Any] | None = study.user_attrs
    except ValueError:  # a stored value that is not JSON
        attrs = None
    budget = (attrs or {}).get(BUDGET_ATTR)
    return StudySummary(
        name=study.study_name,
        direction="/".join(d.name.lower() for d in study.directions),
        model=_model(attrs),
        budget=budget if isinstance(budget, int) and not isinstance(budget, bool) else None,
        states=Counter(t.state.name for t in trials),
        best_value=best.value if best else None,
        best=best,
        stopped=stop_reason(attrs or {}),
        metrics=metric_names(study) if is_multi_objective(study) else (),
        front=tuple(front_trials(study)),
    )


def _model(attrs: dict[str, Any] | None) -> str | None:
    """The model named by the stored spec; None without one, CORRUPT_SPEC if unreadable."""
    if attrs is not None and SPEC_ATTR not in attrs:
        return None  # not created by hpo
    spec = (attrs or {}).get(SPEC_ATTR)
    model = spec.get("model") if isinstance(spec, dict) else None
    return model if isinstance(model, str) else CORRUPT_SPEC


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None
    except RuntimeError:  # a multi-objective study (not hpo's) has no single best trial
        return None


def chosen_trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    """Trial `number` of the study, or its best; one line unless it is a completed trial."""
    name = study.study_name
    if number is None and is_multi_objective(study):
        raise HpoError(
            f"study {name!r} is multi-objective: it has a front of trade-offs, no single best "
            f"trial; pick one with --trial N (`hpo best {name}` lists the front)"
        )
    if number is None:
        best = best_trial(study)
        if best is None:
            raise HpoError(f"study {name!r} has no completed trial yet")
        return best
    found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if not found:
        raise HpoError(f"study {name!r} has no trial {number}")
    if found[0].state != optuna.trial.TrialState.COMPLETE:
        raise HpoError(
            f"trial {number} of study {name!r} is {found[0].state.name.lower()}, not complete; "
            f"pick a completed one (`hpo best {name}` shows the best)"
        )
    return found[0]


def summarize_storage(storage: optuna.storages.BaseStorage) -> list[StudySummary]:
    """Every study, by name; one with corrupt records is listed, never fails the rest."""
    return [
        summarize(optuna.load_study(study_name=name, storage=storage))
        for name in _optuna.study_names(storage)
    ]


def trial_details(trial: FrozenTrial, *, all_attrs: bool = False) -> dict[str, Any]:
    """The facts `hpo best` shows about a trial, as a flat dict.

    Compact by default: the layer diagnostics and other list-valued attrs are left out
    (`all_attrs` keeps them).
    """
    return {
        "number": trial.number,
        "value": trial.value,
        "state": trial.state.name,
        "params": dict(trial.params),
        "user_attrs": {
            key: value
            for key, value in trial.user_attrs.items()
            if all_attrs or is_main_attr(key, value)
        },
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
    }


def is_main_attr(key: str, value: Any) -> bool:
    """A one-value fact about the trial (not a diagnostic or another list)."""
    return not key.startswith(DIAG_PREFIX) and not isinstance(value, list | dict)
