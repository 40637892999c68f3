"""Wall time to target, read from runs.csv: what W workers take on the clock.

Compute to target (hpo.compare.stats) sums the training seconds of a study's trials; with
W workers in parallel the clock runs about W times slower than that sum. runs.csv's
`wall_seconds` column is the study's clock at each finish (simulated in a replay), so the
wall time to target is the clock when the study's best first reaches the target: the
same censored median and bootstrap as compute, over the clock's steps instead of the
trials' seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hpo.compare import stats
from hpo.compare.runs import RunRow


def _studies(rows: Sequence[RunRow]) -> dict[str, list[list[RunRow]]]:
    """Per arm, its studies' rows in finishing order (runs.csv's order), arms as met."""
    by_study: dict[tuple[str, int], list[RunRow]] = {}
    for row in rows:
        by_study.setdefault((row.arm, row.seed), []).append(row)
    arms: dict[str, list[list[RunRow]]] = {}
    for (arm, _seed), study in by_study.items():
        arms.setdefault(arm, []).append(study)
    return arms


def wall_to_target(
    rows: Sequence[RunRow], target: float, direction: str
) -> dict[str, stats.ComputeTarget]:
    """Per arm: each seed's clock when its best first reaches `target`, and their censored
    median with a bootstrap 95% CI (inf: fewer than half the seeds get there)."""
    out = {}
    for arm, studies in _studies(rows).items():
        curves, steps = [], []
        for study in studies:
            values = [r.value if r.state == "COMPLETE" else None for r in study]
            curves.append(stats.best_so_far(values, direction))
            clock = np.array([r.wall_seconds for r in study], dtype=float)
            steps.append(np.diff(clock, prepend=0.0).tolist())
        out[arm] = stats.compute_to_target(curves, steps, target, direction)
    return out


def wall_fractions(
    per_arm: dict[str, stats.ComputeTarget], baseline: str
) -> dict[str, stats.Interval]:
    """Each other arm's median wall time to target as a fraction of the baseline's, 95% CI."""
    base = per_arm[baseline].per_seed
    return {
        arm: stats.compute_fraction_ci(result.per_seed, base)
        for arm, result in per_arm.items()
        if arm != baseline
    }
