"""Where a running study stands, and how fast it moves (plain data; console.py renders it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo.study.front import feasible, pareto_size
from hpo.study.records import BUDGET_ATTR, FINISHED, counted_trials

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class StudyProgress:
    """One consistent snapshot: finished count and best value come from the same read."""

    finished: int  # counted trials that ended (complete, pruned, failed)
    target: int  # the study-wide budget
    best: float | None  # best value among counted complete trials; None before the first
    front: int | None = None  # a multi-objective study's feasible Pareto front size


def progress_of(study: optuna.Study) -> StudyProgress:
    """Read the study once; a best value only counts once its trial has finished."""
    from optuna.trial import TrialState

    trials = counted_trials(study.get_trials(deepcopy=False))
    multi = len(study.directions) > 1  # a front of trade-offs: no one best value
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    values = [t.values[0] for t in done if not multi]
    pick = max if study.directions[0].name == "MAXIMIZE" else min
    front = None
    if multi:  # from the trials already read: no second read per poll
        points = [tuple(t.values) for t in done if feasible(t)]
        front = pareto_size(points, [d.name == "MAXIMIZE" for d in study.directions])
    return StudyProgress(
        finished=sum(1 for t in trials if t.state in FINISHED),
        target=int(study.user_attrs.get(BUDGET_ATTR, 0)),
        best=pick(values) if values else None,
        front=front,
    )


@dataclass(frozen=True)
class Pace:
    per_minute: float | None  # trials finished per minute since the launch; None: none yet
    seconds_left: float | None  # at that rate, until the budget is done; None: unknown


def pace(finished_at_start: int, progress: StudyProgress, elapsed_seconds: float) -> Pace:
    """Rate of this launch (trials it saw finish) and the time left at that rate."""
    done_here = progress.finished - finished_at_start
    if done_here <= 0 or elapsed_seconds <= 0:
        return Pace(None, 0.0 if progress.finished >= progress.target else None)
    per_second = done_here / elapsed_seconds
    left = max(0, progress.target - progress.finished)
    return Pace(per_second * 60, left / per_second if math.isfinite(per_second) else None)
