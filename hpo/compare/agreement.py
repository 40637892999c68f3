"""Does the simulator agree with reality? A live comparison and its replay, arm by arm.

Both sides are read from their `runs.csv` rows (hpo.compare.runs): the live compare's and
the replay's of the same arms, from a table recorded in the same space. Per arm and side:
the median final best with its bootstrap 95% CI, and the training seconds to one common
target (the live baseline's median final best: reality sets the bar) as a censored median
with its CI and as a fraction of the same side's baseline (which cancels a difference in
machine speed between the recording and the live run). Two sides agree on a quantity when
their intervals overlap. Pure: numbers in, numbers out; rendering is elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hpo.compare import stats
from hpo.compare.analyze import BASELINE
from hpo.compare.runs import RunRow, comparison_from_rows


@dataclass(frozen=True)
class Side:
    """One arm on one side (live or replayed)."""

    studies: int
    trials: int  # finished trials over all its studies
    pruned: int
    trial_seconds: float  # median training seconds of a finished trial
    finals: tuple[float, ...]  # final best per study
    final: stats.Interval  # median final best, bootstrap 95% CI
    compute: stats.ComputeTarget  # training seconds to the common target
    fraction: stats.Interval  # that compute / the same side's baseline's, 95% CI


@dataclass(frozen=True)
class ArmAgreement:
    arm: str
    live: Side
    replay: Side
    final_agrees: bool  # the two median-final-best intervals overlap
    compute_agrees: bool  # the two compute-to-target intervals overlap
    fraction_agrees: bool  # the two compute-vs-baseline intervals overlap


@dataclass(frozen=True)
class Agreement:
    direction: str
    baseline: str
    target: float  # the live baseline's median final best
    arms: list[ArmAgreement]


def overlap(a: stats.Interval, b: stats.Interval) -> bool:
    """Do two intervals share a point? (An infinite end, "never", overlaps another.)
    False when either is undefined (NaN)."""
    if any(math.isnan(v) for v in (a.low, a.high, b.low, b.high)):
        return False
    return max(a.low, b.low) <= min(a.high, b.high)


def agreement(live: Sequence[RunRow], replay: Sequence[RunRow], *, direction: str) -> Agreement:
    """Arm by arm (the live rows' arms, in their order), live against replay.

    An arm missing from the replay raises ValueError: the check is of the same arms.
    """
    live_arms = _studies(live, direction)
    replay_arms = _studies(replay, direction)
    missing = [a for a in live_arms if a not in replay_arms]
    if missing:
        raise ValueError(f"arms not in the replay: {', '.join(missing)}")
    baseline = BASELINE if BASELINE in live_arms else next(iter(live_arms))
    base_finals = stats.final_bests([s.curve for s in live_arms[baseline]])
    target = float(np.nanmedian(base_finals)) if np.any(~np.isnan(base_finals)) else math.nan

    def sides(arms: dict[str, list[_Study]]) -> dict[str, Side]:
        computes = {
            arm: stats.compute_to_target(
                [s.curve for s in studies], [s.costs for s in studies], target, direction
            )
            for arm, studies in arms.items()
        }
        return {
            arm: _side(studies, computes[arm], computes[baseline]) for arm, studies in arms.items()
        }

    live_sides, replay_sides = sides(live_arms), sides(replay_arms)
    rows = [
        ArmAgreement(
            arm,
            live_sides[arm],
            replay_sides[arm],
            overlap(live_sides[arm].final, replay_sides[arm].final),
            overlap(live_sides[arm].compute.median, replay_sides[arm].compute.median),
            overlap(live_sides[arm].fraction, replay_sides[arm].fraction),
        )
        for arm in live_arms
    ]
    return Agreement(direction, baseline, target, rows)


@dataclass(frozen=True)
class _Study:
    curve: np.ndarray  # best so far, in finishing order
    costs: list[float]  # training seconds per finished trial, same order
    pruned: int


def _studies(rows: Sequence[RunRow], direction: str) -> dict[str, list[_Study]]:
    """Per arm (in first-seen order), each study's curve and per-trial seconds, in
    finishing order, read as the replay's report reads runs.csv."""
    comparison = comparison_from_rows(
        rows, group="", direction=direction, metric="", budget=0, spec={}, pruners={}
    )
    out: dict[str, list[_Study]] = {}
    for run in comparison.runs:
        out.setdefault(run.arm, []).append(
            _Study(
                stats.best_so_far([t.value for t in run.trials], direction),
                [t.compute for t in run.trials],
                sum(t.state == "PRUNED" for t in run.trials),
            )
        )
    return out


def _side(
    studies: list[_Study], compute: stats.ComputeTarget, baseline: stats.ComputeTarget
) -> Side:
    finals = stats.final_bests([s.curve for s in studies])
    seconds = [c for s in studies for c in s.costs]
    return Side(
        studies=len(studies),
        trials=len(seconds),
        pruned=sum(s.pruned for s in studies),
        trial_seconds=float(np.median(seconds)) if seconds else math.nan,
        finals=tuple(float(v) for v in finals),
        final=stats.bootstrap_ci(finals.tolist()),
        compute=compute,
        fraction=stats.compute_fraction_ci(compute.per_seed, baseline.per_seed),
    )
