"""The Pareto-front picture of a multi-objective comparison (matplotlib PNG).

Each arm's feasible completed trials over all its seeds as points, and the front of them
pooled as a step line, on the first two metrics (accuracy against parameters, say).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt
import numpy as np

from hpo.compare.analyze import ComparisonStats
from hpo.compare.hypervolume import nondominated
from hpo.compare.load import StudyRun
from hpo.config.objectives import METRIC_DIRECTIONS
from hpo.report.shared import PNG_DPI, palette_color


def metrics_of(stats: ComparisonStats) -> tuple[str, ...]:
    return tuple(stats.comparison.spec.get("metrics") or ())


def arm_points(stats: ComparisonStats, arm: str) -> np.ndarray:
    """The arm's feasible completed trials' values (one row each), all seeds."""
    rows = [t.values for r in stats.comparison.runs_of(arm) for t in r.trials if t.values]
    return np.asarray(rows, dtype=float).reshape(-1, len(metrics_of(stats)))


def front_of(points: np.ndarray, maximize: tuple[bool, ...]) -> np.ndarray:
    """The non-dominated rows of `points` on the given directions, by the first column."""
    if len(points) == 0:
        return points
    sign = np.where(maximize, -1.0, 1.0)
    front = nondominated(points * sign) * sign
    return front[np.argsort(front[:, 1])]


def front_numbers(run: StudyRun, metrics: tuple[str, ...]) -> list[int]:
    """The trial numbers on one study's feasible Pareto front."""
    feasible = [t for t in run.trials if t.values]
    if not feasible:
        return []
    sign = np.asarray([-1.0 if METRIC_DIRECTIONS.get(m) == "maximize" else 1.0 for m in metrics])
    points = np.asarray([t.values for t in feasible], dtype=float) * sign
    front = {tuple(row) for row in nondominated(points)}
    return [t.number for t, row in zip(feasible, points, strict=True) if tuple(row) in front]


def png_pareto(stats: ComparisonStats, path: Path) -> Path:
    metrics = metrics_of(stats)
    x_name, y_name = metrics[1], metrics[0]
    maximize = tuple(METRIC_DIRECTIONS.get(m) == "maximize" for m in metrics[:2])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, arm in enumerate(stats.comparison.arms):
        points = arm_points(stats, arm)[:, :2]
        if len(points) == 0:
            continue
        color = palette_color(i)
        ax.scatter(points[:, 1], points[:, 0], s=12, color=color, alpha=0.35)
        front = front_of(points, maximize)
        ax.step(front[:, 1], front[:, 0], where="post", color=color, lw=2, label=f"{arm} front")
    if x_name in ("params", "latency_ms", "train_seconds"):
        ax.set_xscale("log")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    extra = f" (of {', '.join(metrics)})" if len(metrics) > 2 else ""
    ax.set_title(f"{stats.comparison.group}: feasible trials, every seed{extra}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=PNG_DPI)
    plt.close(fig)
    return path
