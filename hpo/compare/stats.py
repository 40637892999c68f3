"""Comparison statistics: pure functions of plain numbers, no storage, no plots.

Conventions: a *curve* is one study's best value so far after 1, 2, ... finished trials
(NaN until the first completed trial); *costs* are the training seconds of those trials,
in the same order; *direction* is "maximize" or "minimize"; values that are None (pruned,
failed) never improve a curve, but their seconds count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same data always gives the same interval


def _better(direction: str) -> Callable[[float, float], bool]:
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)


def best_so_far(values: Sequence[float | None], direction: str) -> np.ndarray:
    """Running best of a study's trial values, in trial order; NaN before the first value."""
    better = _better(direction)
    curve = np.full(len(values), np.nan)
    best = math.nan
    for i, value in enumerate(values):
        if value is not None and math.isfinite(value) and (math.isnan(best) or better(value, best)):
            best = value
        curve[i] = best
    return curve


@dataclass(frozen=True)
class Band:
    """Median and interquartile range across studies at every trial count (1-based)."""

    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    n: np.ndarray  # studies with a value at that trial count

    @property
    def trials(self) -> np.ndarray:
        return np.arange(1, len(self.median) + 1)


def band(curves: Sequence[np.ndarray]) -> Band:
    """Across-seed median and quartiles; a study that ran fewer trials drops out beyond them."""
    length = max((len(c) for c in curves), default=0)
    table = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        table[i, : len(curve)] = curve
    return _band_of(table)


def _band_of(table: np.ndarray) -> Band:
    """Median and quartiles of each column of a (studies x points) table, NaNs left out."""
    length = table.shape[1]
    n = np.sum(~np.isnan(table), axis=0)
    with np.errstate(all="ignore"):
        if length and n.min() == 0:
            # nanpercentile warns on all-NaN columns; those stay NaN either way.
            out = np.full((3, length), np.nan)
            ok = n > 0
            out[:, ok] = np.nanpercentile(table[:, ok], [50, 25, 75], axis=0)
        else:
            out = np.nanpercentile(table, [50, 25, 75], axis=0) if length else np.empty((3, 0))
    return Band(out[0], out[1], out[2], n)


def final_bests(curves: Sequence[np.ndarray]) -> np.ndarray:
    """Each study's best value at its end (NaN if it never completed a trial)."""
    return np.array([c[-1] if len(c) else np.nan for c in curves], dtype=float)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def bootstrap_ci(
    values: Sequence[float],
    *,
    statistic: Callable[..., Any] = np.median,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    method: str = "linear",
) -> Interval:
    """Percentile bootstrap interval of `statistic` (default: the median); NaNs dropped.

    `statistic(array, axis=...)` reduces along an axis as numpy's do (np.median, np.mean,
    censored_median): all resamples are reduced in one call, 150x faster than one at a time.

    `method` is np.quantile's for the interval's ends: "inverted_cdf" takes resampled
    estimates as they are, which infinite ones ("never reached") need; interpolating
    between a finite estimate and an infinite one gives NaN.
    """
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, data.size, size=(resamples, data.size))]
    estimates = np.asarray(statistic(samples, axis=1), dtype=float)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(estimates, [alpha, 1 - alpha], method=method)
    return Interval(float(statistic(data)), float(low), float(high))


@dataclass(frozen=True)
class RankTest:
    """Two-sided Mann-Whitney U test of a against b, oriented by the direction."""

    u: float  # U statistic of `a`
    p_value: float
    p_better: float  # probability that a random study of a beats one of b (ties count half)


def mann_whitney(a: Sequence[float], b: Sequence[float], direction: str) -> RankTest:
    """Do the final bests of `a` and `b` differ? U counts pairs where a is *larger*."""
    _better(direction)
    x = np.asarray([v for v in a if not math.isnan(v)], dtype=float)
    y = np.asarray([v for v in b if not math.isnan(v)], dtype=float)
    if x.size == 0 or y.size == 0:
        return RankTest(math.nan, math.nan, math.nan)
    result = stats.mannwhitneyu(x, y, alternative="two-sided")
    u = float(result.statistic)
    share_larger = u / (x.size * y.size)
    p_better = share_larger if direction == "maximize" else 1 - share_larger
    return RankTest(u, float(result.pvalue), p_better)


def reached(value: float, target: float, direction: str) -> bool:
    """Is `value` at least as good as `target`? (Equal up to float rounding counts.)

    The target is itself a median of curve values, computed by a different numpy routine
    than the median curve; without the tolerance a last-bit difference could make the
    baseline's own median curve "never" reach its own median.
    """
    if math.isnan(value):
        return False
    slack = 1e-9 * max(1.0, abs(target))
    return value >= target - slack if direction == "maximize" else value <= target + slack


def trials_to_target(curve: Sequence[float], target: float, direction: str) -> int | None:
    """Finished trials until the curve first reaches the target; None if it never does."""
    for i, value in enumerate(curve):
        if reached(float(value), target, direction):
            return i + 1
    return None


def cost_to_target(
    curve: Sequence[float], costs: Sequence[float], target: float, direction: str
) -> float | None:
    """Summed cost (e.g. seconds) of the trials run until the curve reaches the target."""
    n = trials_to_target(curve, target, direction)
    return None if n is None else float(np.sum(np.asarray(costs[:n], dtype=float)))


@dataclass(frozen=True)
class TargetResult:
    """How fast one sampler reaches the target, from its median best-so-far curve."""

    trials: int | None  # trials until the median curve reaches the target
    seconds: float | None  # median over seeds of the seconds those trials cost
    hit: int  # studies whose own curve reaches the target
    studies: int


def to_target(
    curves: Sequence[np.ndarray],
    costs: Sequence[Sequence[float]],
    target: float,
    direction: str,
) -> TargetResult:
    """Trials- and seconds-to-target of a sampler.

    Per-seed trials-to-target is censored (some seeds never get there), so the headline
    uses the median curve: the trial count at which the typical study reaches the target.
    Seconds are then the median, over seeds, of what that many trials cost each seed.
    """
    median = band(curves).median
    n = trials_to_target(median, target, direction)
    seconds = None
    if n is not None:
        spent = [float(np.sum(c[:n])) for c in costs if len(c) >= n]
        seconds = float(np.median(spent)) if spent else None
    hit = sum(trials_to_target(c, target, direction) is not None for c in curves)
    return TargetResult(n, seconds, hit, len(curves))


def speedup(baseline: float | None, other: float | None) -> float | None:
    """How many times fewer trials (or seconds) `other` needs than the baseline; None when
    either is missing or never reached (infinite)."""
    if baseline is None or other is None or other <= 0:
        return None
    if math.isinf(baseline) or math.isinf(other):
        return None
    return baseline / other


# ---------------------------------------------------------------- compute to target


def censored_median(values: np.ndarray, axis: int | None = None) -> Any:
    """The smallest x such that at least half of `values` are <= x; inf counts as
    "never reached", so the result is inf when fewer than half the seeds got there.

    The lower median, not the mean of the two middle values: with an even number of seeds
    the baseline reaches its own median final best in exactly half of them, and the
    ordinary median of (last one reached, inf) would say the baseline never gets there.
    With `axis`, one per row (or column), as np.median does.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan
    median = np.quantile(data, 0.5, axis=axis, method="inverted_cdf")
    return float(median) if axis is None else median


@dataclass(frozen=True)
class ComputeTarget:
    """How much training compute one arm spends until it reaches the target, per seed."""

    per_seed: tuple[float | None, ...]  # seconds until reached; None: never, within budget
    median: Interval  # censored median with bootstrap 95% CI; inf: not reached by half
    reached: int  # seeds that reach the target
    studies: int

    @property
    def fraction(self) -> float:
        return self.reached / self.studies if self.studies else math.nan


def compute_to_target(
    curves: Sequence[np.ndarray],
    costs: Sequence[Sequence[float]],
    target: float,
    direction: str,
) -> ComputeTarget:
    """Per seed, the cumulative training seconds of its trials (in trial-number order,
    pruned and failed ones included) until its best so far first reaches `target`; then
    their censored median with a percentile bootstrap 95% CI (seeds resampled)."""
    per_seed = tuple(
        cost_to_target(curve, cost, target, direction)
        for curve, cost in zip(curves, costs, strict=True)
    )
    values = [math.inf if v is None else v for v in per_seed]
    median = bootstrap_ci(values, statistic=censored_median, method="inverted_cdf")
    reached_count = sum(v is not None for v in per_seed)
    return ComputeTarget(per_seed, median, reached_count, len(per_seed))


def compute_fraction_ci(
    arm: Sequence[float | None],
    baseline: Sequence[float | None],
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """The arm's median compute-to-target as a fraction of the baseline's (0.25: a quarter
    of the compute), with a percentile bootstrap CI: each arm's seeds resampled on their
    own, the ratio of censored medians taken per resample.

    Per-seed values are seconds, None for never. A resample where the arm never gets there
    counts as inf (no better than the baseline can be shown), one where only the baseline
    never does as 0.
    """
    a = np.asarray([math.inf if v is None else v for v in arm], dtype=float)
    b = np.asarray([math.inf if v is None else v for v in baseline], dtype=float)
    if a.size == 0 or b.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    a_medians = np.quantile(
        a[rng.integers(0, a.size, size=(resamples, a.size))], 0.5, axis=1, method="inverted_cdf"
    )
    b_medians = np.quantile(
        b[rng.integers(0, b.size, size=(resamples, b.size))], 0.5, axis=1, method="inverted_cdf"
    )
    ratios = _fraction(a_medians, b_medians)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha], method="inverted_cdf")
    estimate = _fraction(np.array([censored_median(a)]), np.array([censored_median(b)]))[0]
    return Interval(float(estimate), float(low), float(high))


def _fraction(arm: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """arm / baseline with the conventions of compute_fraction_ci for infinities."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = arm / baseline
    out[np.isinf(arm)] = math.inf  # the arm never gets there: inf, whatever the baseline
    return out


def step_on_grid(x: Sequence[float], y: Sequence[float], grid: Sequence[float]) -> np.ndarray:
    """A step curve (value y[i] from x[i] on, x ascending) read at every grid point.

    NaN before x[0] (no trial finished yet) and after x[-1] (the study had stopped: a
    study that spent less compute drops out of the band there, as a shorter study drops
    out of the trial-count band).
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    points = np.asarray(grid, dtype=float)
    out = np.full(points.shape, np.nan)
    if xs.size == 0:
        return out
    index = np.searchsorted(xs, points, side="right") - 1
    inside = (index >= 0) & (points <= xs[-1])
    out[inside] = ys[index[inside]]
    return out


def compute_band(
    curves: Sequence[np.ndarray], costs: Sequence[Sequence[float]], grid: Sequence[float]
) -> Band:
    """Median and IQR of best-so-far against cumulative training seconds, across seeds:
    each seed's step curve (its best after the trial that brings the sum to x) on `grid`."""
    table = np.full((len(curves), len(grid)), np.nan)
    for i, (curve, cost) in enumerate(zip(curves, costs, strict=True)):
        table[i] = step_on_grid(np.cumsum(np.asarray(cost, dtype=float)), curve, grid)
    return _band_of(table)


def compute_grid(costs: Sequence[Sequence[float]], points: int = 200) -> np.ndarray:
    """A common seconds axis for several arms: 0 to the largest total compute of a study."""
    totals = [float(np.sum(c)) for c in costs if len(c)]
    return np.linspace(0.0, max(totals, default=0.0), points)


# ---------------------------------------------------------------- layer diagnostics


def spread(values: Sequence[float | None]) -> float | None:
    """log10(max / min) of positive per-layer numbers: 0 = even, 3 = a factor of 1000.

    Applied to activation std or gradient norms down the layers, a large spread is the
    signature of vanishing or exploding signals.
    """
    positive = [v for v in values if v is not None and v > 0]
    if len(positive) < 2:
        return None
    return math.log10(max(positive) / min(positive))


def log_max(values: Sequence[float | None]) -> float | None:
    """log10 of the largest positive per-layer number: the scale of the biggest signal.

    Activation std of ~1 (0 here) is healthy; 3 means a layer's outputs are ~1000x too large
    (what N(0, 1) init does without normalisation).
    """
    positive = [v for v in values if v is not None and v > 0]
    return math.log10(max(positive)) if positive else None


def grad_ratio(grad_norms: Sequence[float | None]) -> float | None:
    """log10(first layer's gradient norm / last layer's): << 0 vanishing, >> 0 exploding."""
    values = [v for v in grad_norms if v is not None]
    if len(values) < 2 or values[0] <= 0 or values[-1] <= 0:
        return None
    return math.log10(values[0] / values[-1])


def mean_or_none(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None
