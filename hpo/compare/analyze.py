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
from hpo.records import diag_attr

BASELINE = "random"  # the sampler others are measured against, when it is in the group


@dataclass(frozen=True)
class SamplerStats:
    sampler: str
    studies: int
    trials: int  # finished trials over all its studies
    curves: list[np.ndarray]  # best so far per study, in trial-number order
    band: stats.Band
    finals: np.ndarray  # final best per study
    final: stats.Interval  # median final best with bootstrap 95% CI
    q25: float
    q75: float
    target: stats.TargetResult
    seconds: float  # summed trial seconds over all its studies
    importances: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VersusBaseline:
    sampler: str
    test: stats.RankTest  # final bests of this sampler vs the baseline's
    speedup_trials: float | None
    speedup_seconds: float | None


@dataclass(frozen=True)
class DiagRow:
    """One trial with the layer diagnostics reduced to scalars (see hpo.compare.stats)."""

    sampler: str
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
    samplers: list[SamplerStats]
    versus: list[VersusBaseline]
    diagnostics: list[DiagRow]

    def of(self, sampler: str) -> SamplerStats:
        return next(s for s in self.samplers if s.sampler == sampler)


def analyze(
    comparison: Comparison, importances: Mapping[str, Mapping[str, float]] | None = None
) -> ComparisonStats:
    direction = comparison.direction
    samplers = comparison.samplers
    baseline = BASELINE if BASELINE in samplers else samplers[0]
    curves = {s: [_curve(r, direction) for r in comparison.runs_of(s)] for s in samplers}
    costs = {s: [[t.seconds for t in r.trials] for r in comparison.runs_of(s)] for s in samplers}
    base_finals = stats.final_bests(curves[baseline])
    target = float(np.nanmedian(base_finals)) if np.any(~np.isnan(base_finals)) else math.nan

    per_sampler = []
    for s in samplers:
        finals = stats.final_bests(curves[s])
        q25, q75 = (
            np.nanpercentile(finals, [25, 75]) if np.any(~np.isnan(finals)) else (math.nan,) * 2
        )
        per_sampler.append(
            SamplerStats(
                sampler=s,
                studies=len(curves[s]),
                trials=sum(len(c) for c in curves[s]),
                curves=curves[s],
                band=stats.band(curves[s]),
                finals=finals,
                final=stats.bootstrap_ci(finals.tolist()),
                q25=float(q25),
                q75=float(q75),
                target=stats.to_target(curves[s], costs[s], target, direction),
                seconds=float(sum(sum(c) for c in costs[s])),
                importances=dict((importances or {}).get(s, {})),
            )
        )
    by_name = {s.sampler: s for s in per_sampler}
    versus = [
        VersusBaseline(
            s.sampler,
            stats.mann_whitney(s.finals.tolist(), by_name[baseline].finals.tolist(), direction),
            stats.speedup(by_name[baseline].target.trials, s.target.trials),
            stats.speedup(by_name[baseline].target.seconds, s.target.seconds),
        )
        for s in per_sampler
        if s.sampler != baseline
    ]
    return ComparisonStats(
        comparison, baseline, target, per_sampler, versus, diagnostic_rows(comparison)
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
                    sampler=run.sampler,
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
