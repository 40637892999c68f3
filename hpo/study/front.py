"""The Pareto front of a multi-objective study, as plain data (console.py renders it).

Optuna's `study.best_trials` is the front; with constraints it holds feasible trials only
(every constraint value <= 0). A trial is kept off it here too when any of its values is
not finite, or any constraint is broken, so that no report shows an infeasible trial as a
trade-off to choose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial


def is_multi_objective(study: optuna.Study) -> bool:
    return len(study.directions) > 1


def metric_names(study: optuna.Study) -> tuple[str, ...]:
    """The study's metric names (set_metric_names), or Optuna's own labels without them."""
    names = study.metric_names
    return tuple(names) if names else tuple(f"objective {i}" for i in range(len(study.directions)))


def pareto_size(points: list[tuple[float, ...]], maximize: list[bool]) -> int:
    """How many of `points` (one row of metric values each) no other point dominates,
    counting equal rows once: the front's size, from values already read."""
    if not points:
        return 0
    table = np.unique(np.asarray(points, dtype=float) * np.where(maximize, -1.0, 1.0), axis=0)
    no_worse = np.all(table[:, None, :] <= table[None, :, :], axis=2)
    better = np.any(table[:, None, :] < table[None, :, :], axis=2)
    return int(np.sum(~np.any(no_worse & better, axis=0)))


def feasible(trial: FrozenTrial) -> bool:
    return all(value <= 0 for value in trial.constraints.values())


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible trials on the study's Pareto front, by number; [] for one objective."""
    if not is_multi_objective(study):
        return []
    front = [
        t
        for t in study.best_trials
        if feasible(t) and t.values is not None and all(map(math.isfinite, t.values))
    ]
    return sorted(front, key=lambda t: t.number)


@dataclass(frozen=True)
class FrontRow:
    """One trade-off: a trial of the front, its metrics and main hyperparameters."""

    number: int
    values: dict[str, float]  # metric name -> value
    params: dict[str, Any]
    test_accuracy: float | None


def front_rows(trials: list[FrozenTrial], names: tuple[str, ...]) -> list[FrontRow]:
    """The front's rows, in the order of `trials`."""
    return [
        FrontRow(
            number=t.number,
            values=dict(zip(names, t.values, strict=True)),
            params=dict(t.params),
            test_accuracy=_number(t.user_attrs.get("test_accuracy")),
        )
        for t in trials
    ]


@dataclass(frozen=True)
class FrontMarks:
    """What a trials table adds for a multi-objective study: a value column per metric and
    whether each trial is on the front."""

    metrics: tuple[str, ...]
    numbers: frozenset[int]  # the front's trial numbers


def front_marks(study: optuna.Study) -> FrontMarks | None:
    """The study's FrontMarks; None for a single-objective study."""
    if not is_multi_objective(study):
        return None
    return FrontMarks(metric_names(study), frozenset(t.number for t in front_trials(study)))


def marked_columns(trial: FrozenTrial, marks: FrontMarks) -> dict[str, Any]:
    """A trial's multi-objective columns: value_METRIC each, on_front, feasible."""
    values = trial.values if trial.values is not None else [None] * len(marks.metrics)
    return {
        **{f"value_{name}": value for name, value in zip(marks.metrics, values, strict=True)},
        "on_front": trial.number in marks.numbers,
        "feasible": feasible(trial),
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
