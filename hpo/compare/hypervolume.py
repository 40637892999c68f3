"""Hypervolume: how a multi-objective comparison judges an arm (pure: numpy only).

A multi-objective study has no best value, so `hpo compare` reads each study as the
hypervolume of its feasible Pareto front after each trial, a curve that only rises, and
runs the single-objective statistics on it (best so far, compute to target, bootstrap
intervals, rank tests) unchanged.

The reference point is the same for every study of a comparison: each metric is turned
into a minimized one (accuracy negated) and scaled to [0, 1] between the best and the worst
value any feasible completed trial of the whole comparison reached (every arm, every seed);
the reference point is 1.1 on each scaled axis (the worst value plus a tenth of the range),
so that the worst trials still add volume. The largest possible hypervolume is 1.1**d (d
metrics); a front that reaches the best value of every metric at once would have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REFERENCE = 1.1  # the reference point on each scaled axis


@dataclass(frozen=True)
class Scale:
    """How each metric's values map onto a minimized [0, 1] axis."""

    metrics: tuple[str, ...]
    maximize: tuple[bool, ...]
    best: tuple[float, ...]  # raw value that maps to 0
    worst: tuple[float, ...]  # raw value that maps to 1

    def scaled(self, values: Sequence[float]) -> np.ndarray:
        out = []
        for value, best, worst in zip(values, self.best, self.worst, strict=True):
            span = worst - best
            out.append(0.0 if span == 0 else (value - best) / span)
        return np.asarray(out, dtype=float)

    def describe(self) -> str:
        """The reference point in the metrics' own units, for the report."""
        parts = []
        for metric, best, worst in zip(self.metrics, self.best, self.worst, strict=True):
            reference = worst + (REFERENCE - 1) * (worst - best)
            parts.append(f"{metric} {reference:.4g} (best {best:.4g}, worst {worst:.4g})")
        return "; ".join(parts)


def scale_of(
    metrics: Sequence[str], maximize: Sequence[bool], points: Sequence[Sequence[float]]
) -> Scale:
    """The scale of a comparison from every feasible completed trial's values."""
    table = np.asarray(points, dtype=float).reshape(-1, len(metrics))
    if len(table) == 0:
        zeros = (0.0,) * len(metrics)
        return Scale(tuple(metrics), tuple(maximize), zeros, zeros)
    high, low = table.max(axis=0), table.min(axis=0)
    best = tuple(float(h if up else lo) for h, lo, up in zip(high, low, maximize, strict=True))
    worst = tuple(float(lo if up else h) for h, lo, up in zip(high, low, maximize, strict=True))
    return Scale(tuple(metrics), tuple(maximize), best, worst)


def hypervolume(points: np.ndarray, reference: float = REFERENCE) -> float:
    """The volume dominated by `points` (minimized, one row each) and bounded by the
    reference point `reference` on every axis. Exact, by slicing along the last axis: fine
    for the few hundred trials of a study in 2 or 3 dimensions."""
    points = np.asarray(points, dtype=float)
    if points.size == 0:
        return 0.0
    points = nondominated(points[np.all(points < reference, axis=1)]) if len(points) else points
    return _volume(points, reference)


def _volume(points: np.ndarray, reference: float) -> float:
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference - points[:, 0].min())
    order = np.argsort(points[:, -1], kind="stable")
    ordered = points[order]
    total = 0.0
    for i in range(len(ordered)):
        top = ordered[i + 1, -1] if i + 1 < len(ordered) else reference
        height = top - ordered[i, -1]
        if height > 0:  # the points up to i, projected, dominate this slab
            total += height * _volume(ordered[: i + 1, :-1], reference)
    return total


def hypervolume_curve(
    values: Sequence[Sequence[float] | None], scale: Scale, reference: float = REFERENCE
) -> list[float]:
    """The hypervolume after each trial, in order: `values` holds each trial's metric
    values, or None for one that adds nothing (failed, infeasible)."""
    kept: list[np.ndarray] = []
    curve = []
    volume = 0.0
    for trial in values:
        if trial is not None:
            kept.append(scale.scaled(trial))  # 0 at the best, 1 at the worst: minimized
            kept = list(nondominated(np.asarray(kept)))  # only the front adds volume
            volume = hypervolume(np.asarray(kept), reference)
        curve.append(volume)
    return curve


def nondominated(points: np.ndarray) -> np.ndarray:
    """The rows of `points` (minimized) that no other row dominates; duplicates once."""
    points = np.unique(np.asarray(points, dtype=float), axis=0)
    no_worse = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    better = np.any(points[:, None, :] < points[None, :, :], axis=2)
    dominated = np.any(no_worse & better, axis=0)  # [j]: some row i dominates row j
    return points[~dominated]
