"""From a comparison's plain data to its statistics: `Comparison` -> `ComparisonStats`.

`analyze` applies the pure functions of hpo.compare.stats to a `Comparison` read from
storage; the result holds everything the table, the Markdown, the figures and the
dashboard show. No storage access and no rendering here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpo.compare import stats
from hpo.compare.load import Comparison, StudyRun
from hpo.study.records import diag_attr

BASELINE = "random"  # the arm others are measured against when present; else the first


@dataclass(frozen=True)
class ArmStats:
    arm: str  # label: `tpe`, `tpe+hyperband`
    studies: int
    trials: int  # finished trials over all its studies
    curves: list[np.ndarray]  # best so far per study, in trial-number order
    costs: list[list[float]]  # training seconds per trial per study, same order
    band: stats.Band  # best so far against finished trials
    compute_band: stats.Band  # best so far against cumulative training seconds (the grid)
    finals: np.ndarray  # final best per study
    final: stats.Interval  # median final best with bootstrap 95% CI
    q25: float
    q75: float
    target: stats.TargetResult  # trials to target, from the median curve
    compute: stats.ComputeTarget  # training seconds to target, per seed, and their median
    seconds: float  # summed training seconds over all its studies
    importances: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VersusBaseline:
    arm: str
    test: stats.RankTest  # final bests of this arm vs the baseline's
    speedup_trials: float | None
    compute_fraction: stats.Interval  # median compute to target / the baseline's, 95% CI
    speedup_compute: float | None  # baseline median compute / this arm's


@dataclass(frozen=True)
class DiagRow:
    """One trial with the layer diagnostics reduced to scalars (see hpo.compare.stats)."""

    arm: str
    study: str
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    init_act_scale: float | None  # log10 of the largest activation std over layers, at init
    init_act_spread: float | None  # log10 max/min activation std over layers, at init
    init_grad_scale: float | None  # log10 of the largest gradient norm over layers, at init
    init_grad_ratio: float | None  # log10 first-layer / last-layer gradient norm, at init
    final_grad_ratio: float | None
    final_dead: float | None  # mean fraction of dead units per activation layer, at the end


@dataclass(frozen=True)
class ComparisonStats:
    comparison: Comparison
    baseline: str
    target: float  # the baseline's median final best
    arms: list[ArmStats]
    versus: list[VersusBaseline]
    diagnostics: list[DiagRow]
    compute_grid: np.ndarray  # training seconds at which every arm's compute_band is read

    def of(self, arm: str) -> ArmStats:
        return next(s for s in self.arms if s.arm == arm)


def analyze(
    comparison: Comparison, importances: Mapping[str, Mapping[str, float]] | None = None
) -> ComparisonStats:
    direction = comparison.direction
    arms = comparison.arms
    baseline = BASELINE if BASELINE in arms else arms[0]
    curves = {a: [_curve(r, direction) for r in comparison.runs_of(a)] for a in arms}
    # Compute is training seconds (TrialRecord.compute), the same measure for every arm.
    costs = {a: [[t.compute for t in r.trials] for r in comparison.runs_of(a)] for a in arms}
    base_finals = stats.final_bests(curves[baseline])
    target = float(np.nanmedian(base_finals)) if np.any(~np.isnan(base_finals)) else math.nan
    grid = stats.compute_grid([c for a in arms for c in costs[a]])

    per_arm = []
    for a in arms:
        finals = stats.final_bests(curves[a])
        q25, q75 = (
            np.nanpercentile(finals, [25, 75]) if np.any(~np.isnan(finals)) else (math.nan,) * 2
        )
        per_arm.append(
            ArmStats(
                arm=a,
                studies=len(curves[a]),
                trials=sum(len(c) for c in curves[a]),
                curves=curves[a],
                costs=costs[a],
                band=stats.band(curves[a]),
                compute_band=stats.compute_band(curves[a], costs[a], grid),
                finals=finals,
                final=stats.bootstrap_ci(finals.tolist()),
                q25=float(q25),
                q75=float(q75),
                target=stats.to_target(curves[a], costs[a], target, direction),
                compute=stats.compute_to_target(curves[a], costs[a], target, direction),
                seconds=float(sum(sum(c) for c in costs[a])),
                importances=dict((importances or {}).get(a, {})),
            )
        )
    base = next(s for s in per_arm if s.arm == baseline)
    versus = [
        VersusBaseline(
            s.arm,
            stats.mann_whitney(s.finals.tolist(), base.finals.tolist(), direction),
            stats.speedup(base.target.trials, s.target.trials),
            stats.compute_fraction_ci(s.compute.per_seed, base.compute.per_seed)
            if math.isfinite(target)
            else stats.Interval(math.nan, math.nan, math.nan),  # no target: nothing to compare
            stats.speedup(base.compute.median.estimate, s.compute.median.estimate),
        )
        for s in per_arm
        if s.arm != baseline
    ]
    return ComparisonStats(
        comparison, baseline, target, per_arm, versus, diagnostic_rows(comparison), grid
    )


def _curve(run: StudyRun, direction: str) -> np.ndarray:
    return stats.best_so_far([t.value for t in run.trials], direction)


def diagnostic_rows(comparison: Comparison) -> list[DiagRow]:
    rows = []
    for run in comparison.runs:
        for t in run.trials:
            a = t.attrs
            if diag_attr("init", "act_std") not in a:
                continue  # recorded by an hpo version without diagnostics
            rows.append(
                DiagRow(
                    arm=run.arm,
                    study=run.name,
                    number=t.number,
                    state=t.state,
                    value=t.value,
                    params=t.params,
                    init_act_scale=stats.log_max(a.get(diag_attr("init", "act_std"), [])),
                    init_act_spread=stats.spread(a.get(diag_attr("init", "act_std"), [])),
                    init_grad_scale=stats.log_max(a.get(diag_attr("init", "grad_norm"), [])),
                    init_grad_ratio=stats.grad_ratio(a.get(diag_attr("init", "grad_norm"), [])),
                    final_grad_ratio=stats.grad_ratio(a.get(diag_attr("final", "grad_norm"), [])),
                    final_dead=stats.mean_or_none(a.get(diag_attr("final", "dead_fraction"), [])),
                )
            )
    return rows


@dataclass(frozen=True)
class DiagGroup:
    """Trials sharing one value of a hyperparameter, summarised."""

    key: str
    value: str
    n: int
    pruned: int  # stopped early by the pruner: behind the other trials at the same epoch
    failed: int  # diverged (NaN/inf loss) or errored trials
    median_value: float | None
    median_act_scale: float | None
    median_act_spread: float | None
    median_grad_scale: float | None
    median_grad_ratio: float | None
    median_dead: float | None


def diagnostics_by(
    rows: list[DiagRow], params: tuple[str, ...], direction: str = "maximize"
) -> list[DiagGroup]:
    """Group trials by hyperparameter values, best median value first: where do failures
    and bad signals cluster? Several params group by their combination (e.g. init x
    batchnorm: BatchNorm hides a bad init's exploding activations)."""
    groups: dict[str, list[DiagRow]] = defaultdict(list)
    for row in rows:
        if all(p in row.params for p in params):
            groups[" / ".join(str(row.params[p]) for p in params)].append(row)

    def med(values: list[float | None]) -> float | None:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        return float(np.median(finite)) if finite else None

    out = [
        DiagGroup(
            " / ".join(params),
            value,
            len(g),
            sum(r.state == "PRUNED" for r in g),
            sum(r.state == "FAIL" for r in g),
            med([r.value for r in g]),
            med([r.init_act_scale for r in g]),
            med([r.init_act_spread for r in g]),
            med([r.init_grad_scale for r in g]),
            med([r.init_grad_ratio for r in g]),
            med([r.final_dead for r in g]),
        )
        for value, g in groups.items()
    ]
    sign = -1 if direction == "maximize" else 1
    return sorted(out, key=lambda d: (d.median_value is None, sign * (d.median_value or 0)))
