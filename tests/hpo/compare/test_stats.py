"""hpo.stats.stats: statistics on hand-computed cases and synthetic curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpo.compare import stats

NAN = math.nan


def same(a: np.ndarray, b: list[float]) -> bool:
    return np.allclose(a, np.array(b, dtype=float), equal_nan=True)


def test_best_so_far_carries_the_best_and_skips_missing_values() -> None:
    values = [None, 0.5, 0.3, 0.7, None, 0.6]
    assert same(stats.best_so_far(values, "maximize"), [NAN, 0.5, 0.5, 0.7, 0.7, 0.7])
    assert same(stats.best_so_far(values, "minimize"), [NAN, 0.5, 0.3, 0.3, 0.3, 0.3])
    assert same(stats.best_so_far([NAN, 1.0], "maximize"), [NAN, 1.0])  # NaN never wins
    assert stats.best_so_far([], "maximize").size == 0


def test_best_so_far_rejects_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        stats.best_so_far([1.0], "up")


def test_band_is_median_and_quartiles_per_trial_count() -> None:
    curves = [np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0, 5.0]), np.array([5.0, 6.0, 7.0])]
    b = stats.band(curves)
    assert same(b.median, [3, 4, 5])
    assert same(b.q25, [2, 3, 4])  # linear interpolation between the lower two
    assert same(b.q75, [4, 5, 6])
    assert b.trials.tolist() == [1, 2, 3]
    assert b.n.tolist() == [3, 3, 3]


def test_band_drops_studies_beyond_their_length_and_before_their_first_value() -> None:
    b = stats.band([np.array([NAN, 2.0, 4.0]), np.array([1.0, 3.0])])
    assert same(b.median, [1.0, 2.5, 4.0])
    assert b.n.tolist() == [1, 2, 1]
    assert same(stats.band([np.array([NAN])]).median, [NAN])


def test_bootstrap_of_two_points_has_the_hand_computed_interval() -> None:
    # Resampled means of [0, 10] are 0, 5 or 10 with probability 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles are 0 and 10.
    ci = stats.bootstrap_ci([0.0, 10.0], statistic=np.mean)
    assert (ci.estimate, ci.low, ci.high) == (5.0, 0.0, 10.0)


def test_bootstrap_is_reproducible_and_brackets_the_median() -> None:
    values = [0.90, 0.91, 0.93, 0.95, 0.96, 0.97, 0.97, 0.98]
    a, b = stats.bootstrap_ci(values), stats.bootstrap_ci(values)
    assert a == b  # fixed seed
    assert a.estimate == pytest.approx(0.955)
    assert a.low <= a.estimate <= a.high
    assert 0.90 <= a.low < a.high <= 0.98
    const = stats.bootstrap_ci([0.5, 0.5, 0.5, NAN])
    assert (const.estimate, const.low, const.high) == (0.5, 0.5, 0.5)
    assert math.isnan(stats.bootstrap_ci([]).estimate)


def _first(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """The first value of each resample: an estimate drawn uniformly from the data."""
    return np.take(values, 0, axis=axis if axis is not None else 0)


def test_a_95_percent_bootstrap_interval_has_the_known_distributions_quantiles() -> None:
    """The statistic "first value of the resample" is a uniform draw from 0..999, whose 2.5%
    and 97.5% quantiles are 25 and 975; a 90% interval would give 50 and 950."""
    ci = stats.bootstrap_ci(list(range(1000)), statistic=_first)
    assert ci.low == pytest.approx(25, abs=6)
    assert ci.high == pytest.approx(975, abs=6)


def _one_resample_at_a_time(values, statistic, method):
    """bootstrap_ci as it was: np.apply_along_axis, one resample per call (443 ms)."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
    samples = data[rng.integers(0, data.size, size=(stats.BOOTSTRAP_RESAMPLES, data.size))]
    estimates = np.apply_along_axis(statistic, 1, samples)
    low, high = np.quantile(estimates, [0.025, 0.975], method=method)
    return stats.Interval(float(statistic(data)), float(low), float(high))


FIXED = {
    "accuracies": [0.90, 0.91, 0.93, 0.95, 0.96, 0.97, 0.97, 0.98, NAN],
    "seconds": [12.5, 3.25, 40.0, 7.75, 19.0, 3.25, 61.5],
    "even, with never": [5.0, math.inf, 2.0, 9.0, math.inf, 4.0],
    "one": [0.7],
}


CASES = [
    (statistic, method, values)
    for statistic, method in [(np.median, "linear"), (np.mean, "linear")]
    for values in FIXED.values()
    if math.inf not in values  # "never reached" is the censored median's alone
] + [(stats.censored_median, "inverted_cdf", values) for values in FIXED.values()]


@pytest.mark.parametrize(("statistic", "method", "values"), CASES)
def test_bootstrap_of_all_resamples_at_once_equals_one_at_a_time(statistic, method, values):
    fast = stats.bootstrap_ci(values, statistic=statistic, method=method)
    assert fast == _one_resample_at_a_time(values, statistic, method)


def test_mann_whitney_of_separated_samples() -> None:
    # Every a beats every b: U = 3 * 3 = 9; the exact two-sided p is 2 / C(6, 3) = 0.1.
    test = stats.mann_whitney([4.0, 5.0, 6.0], [1.0, 2.0, 3.0], "maximize")
    assert test.u == 9.0
    assert test.p_value == pytest.approx(0.1)
    assert test.p_better == 1.0
    assert stats.mann_whitney([4.0, 5.0, 6.0], [1.0, 2.0, 3.0], "minimize").p_better == 0.0


def test_mann_whitney_counts_ties_half() -> None:
    test = stats.mann_whitney([1.0, 2.0], [1.0, 2.0], "maximize")
    assert test.p_better == 0.5
    assert test.p_value == pytest.approx(1.0)


def test_synthetic_seeds_where_tpe_is_clearly_better_are_significant() -> None:
    rng = np.random.default_rng(1)
    random_finals = 0.90 + 0.01 * rng.random(10)
    tpe_finals = 0.95 + 0.01 * rng.random(10)
    test = stats.mann_whitney(tpe_finals.tolist(), random_finals.tolist(), "maximize")
    assert test.p_better == 1.0
    assert test.p_value < 1e-3
    same_dist = stats.mann_whitney(
        (0.9 + 0.01 * rng.random(10)).tolist(), random_finals.tolist(), "maximize"
    )
    assert same_dist.p_value > 0.01


def test_trials_and_cost_to_target() -> None:
    curve = [0.1, 0.5, 0.5, 0.9]
    assert stats.trials_to_target(curve, 0.5, "maximize") == 2
    assert stats.trials_to_target(curve, 0.95, "maximize") is None
    assert stats.trials_to_target([NAN, 3.0, 1.0], 2.0, "minimize") == 3
    # A median computed two ways may differ in the last bit: still "reached".
    assert stats.trials_to_target([0.3 - 1e-15], 0.3, "maximize") == 1
    assert stats.trials_to_target([0.2999], 0.3, "maximize") is None
    assert stats.cost_to_target(curve, [1.0, 2.0, 4.0, 8.0], 0.9, "maximize") == 15.0
    assert stats.cost_to_target(curve, [1.0] * 4, 2.0, "maximize") is None


def test_to_target_uses_the_median_curve_and_counts_seeds_that_get_there() -> None:
    # Random's median curve reaches 0.8 at trial 4, TPE's at trial 2: a speedup of 2.
    random_curves = [
        np.array([0.2, 0.5, 0.7, 0.8]),
        np.array([0.3, 0.6, 0.7, 0.8]),
        np.array([0.1, 0.4, 0.6, 0.7]),
    ]
    tpe_curves = [
        np.array([0.2, 0.8, 0.9, 0.9]),
        np.array([0.5, 0.8, 0.8, 0.9]),
        np.array([0.1, 0.6, 0.7, 0.7]),
    ]
    costs = [[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0]]
    target = float(np.median(stats.final_bests(random_curves)))
    assert target == 0.8
    r = stats.to_target(random_curves, costs, target, "maximize")
    t = stats.to_target(tpe_curves, costs, target, "maximize")
    assert (r.trials, r.hit, r.studies) == (4, 2, 3)
    assert (t.trials, t.hit) == (2, 2)
    assert r.seconds == 8.0  # median of 4, 8, 12 seconds for 4 trials
    assert t.seconds == 4.0  # median of 2, 4, 6 seconds for 2 trials
    assert stats.speedup(r.trials, t.trials) == 2.0
    assert stats.speedup(r.seconds, t.seconds) == 2.0
    assert stats.speedup(4, None) is None


def test_layer_diagnostic_summaries() -> None:
    assert stats.log_max([0.5, 1000.0, None]) == pytest.approx(3.0)
    assert stats.log_max([0.0, None]) is None
    assert stats.spread([1.0, 10.0, 100.0]) == pytest.approx(2.0)
    assert stats.spread([1.0, None, 0.0]) is None  # one positive layer: no spread
    assert stats.grad_ratio([0.001, 0.1, 1.0]) == pytest.approx(-3.0)  # vanishing
    assert stats.grad_ratio([10.0, None, 0.1]) == pytest.approx(2.0)  # exploding
    assert stats.grad_ratio([0.0, 1.0]) is None
    assert stats.mean_or_none([0.2, None, 0.4]) == pytest.approx(0.3)
    assert stats.mean_or_none([None]) is None


# ---------------------------------------------------------------- compute to target


def test_compute_to_target_counts_pruned_and_failed_seconds_and_censors_misses() -> None:
    # Maximize, target 0.8. Seed a: trials 2 (pruned) and 3 (failed) have no value but
    # their seconds count: 10 + 2 + 3 + 5 = 20 at trial 4. Seed b: 4 s, on its first
    # trial. Seed c: never (0.7 is its best).
    curves = [
        stats.best_so_far([0.5, None, None, 0.8], "maximize"),
        stats.best_so_far([0.9, 0.1], "maximize"),
        stats.best_so_far([0.1, 0.7], "maximize"),
    ]
    costs = [[10.0, 2.0, 3.0, 5.0], [4.0, 9.0], [1.0, 1.0]]
    result = stats.compute_to_target(curves, costs, 0.8, "maximize")
    assert result.per_seed == (20.0, 4.0, None)
    assert (result.reached, result.studies) == (2, 3)
    assert result.fraction == pytest.approx(2 / 3)
    # Sorted 4, 20, never: half the seeds (2 of 3) are there after 20 s.
    assert result.median.estimate == 20.0
    assert result.median.low <= 20.0 <= result.median.high


def test_compute_to_target_ties_at_the_target_count_as_reached() -> None:
    curves = [np.array([0.8]), np.array([0.7, 0.8])]
    result = stats.compute_to_target(curves, [[3.0], [1.0, 2.0]], 0.8, "maximize")
    assert result.per_seed == (3.0, 3.0)
    assert (result.median.estimate, result.median.low, result.median.high) == (3.0, 3.0, 3.0)
    minimize = stats.compute_to_target([np.array([2.0, 1.0])], [[1.0, 1.0]], 1.0, "minimize")
    assert minimize.per_seed == (2.0,)


def test_the_baseline_reaches_its_own_median_with_an_even_number_of_seeds() -> None:
    # Finals 0.8 and 0.9: the target 0.85 is reached by one seed of two. The ordinary median
    # of (7 s, never) would be "never"; half the seeds are there after 7 s.
    curves = [np.array([0.8]), np.array([0.6, 0.9])]
    target = float(np.median(stats.final_bests(curves)))
    result = stats.compute_to_target(curves, [[5.0], [3.0, 4.0]], target, "maximize")
    assert result.per_seed == (None, 7.0)
    assert result.median.estimate == 7.0


def test_an_arm_that_reaches_the_target_in_under_half_its_seeds_is_not_reached() -> None:
    curves = [np.array([0.9]), np.array([0.1]), np.array([0.2])]
    result = stats.compute_to_target(curves, [[1.0], [1.0], [1.0]], 0.8, "maximize")
    assert result.per_seed == (1.0, None, None)
    assert math.isinf(result.median.estimate)
    # A resample's median is 1 s when two or three of its three draws are seed 0:
    # probability 7/27 > 2.5%, so the interval's low end is 1 s and its high end never.
    assert (result.median.low, result.median.high) == (1.0, math.inf)
    assert stats.speedup(10.0, result.median.estimate) is None
    nothing = stats.compute_to_target([np.array([0.1])], [[1.0]], math.nan, "maximize")
    assert nothing.per_seed == (None,) and nothing.reached == 0


def test_censored_median_is_the_lower_median_with_never_last() -> None:
    assert stats.censored_median(np.array([3.0, 1.0, 2.0])) == 2.0
    assert stats.censored_median(np.array([4.0, 1.0, 3.0, 2.0])) == 2.0
    assert stats.censored_median(np.array([1.0, math.inf])) == 1.0
    assert math.isinf(stats.censored_median(np.array([1.0, math.inf, math.inf])))
    assert math.isnan(stats.censored_median(np.array([])))


def test_compute_fraction_is_the_ratio_of_median_compute_with_a_bootstrap_ci() -> None:
    ci = stats.compute_fraction_ci([2.0, 2.0], [8.0, 8.0])
    assert (ci.estimate, ci.low, ci.high) == (0.25, 0.25, 0.25)
    never = stats.compute_fraction_ci([None, None], [8.0, 8.0])
    assert (never.estimate, never.low, never.high) == (math.inf, math.inf, math.inf)
    only_arm = stats.compute_fraction_ci([2.0], [None])  # the baseline never gets there
    assert only_arm.estimate == 0.0
    spread = stats.compute_fraction_ci([1.0, 2.0, 3.0], [10.0, 10.0, 10.0])
    assert spread.estimate == pytest.approx(0.2)
    assert 0.1 <= spread.low <= 0.2 <= spread.high <= 0.3
    assert math.isnan(stats.compute_fraction_ci([], [1.0]).estimate)


def test_speedup_is_none_for_infinite_compute() -> None:
    assert stats.speedup(8.0, 2.0) == 4.0
    assert stats.speedup(math.inf, 2.0) is None
    assert stats.speedup(8.0, math.inf) is None


def test_step_curve_on_a_grid_holds_values_and_is_nan_outside_the_study() -> None:
    grid = [0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0]
    read = stats.step_on_grid([1.0, 3.0, 6.0], [0.5, 0.5, 0.9], grid)
    assert same(read, [NAN, 0.5, 0.5, 0.5, 0.5, 0.9, NAN])
    assert same(stats.step_on_grid([], [], [1.0]), [NAN])
    assert same(stats.step_on_grid([1.0, 2.0], [NAN, 0.3], [1.5, 2.0]), [NAN, 0.3])


def test_compute_band_puts_seeds_on_the_common_seconds_grid() -> None:
    curves = [np.array([0.2, 0.6]), np.array([0.4, 0.8]), np.array([0.3])]
    costs = [[1.0, 1.0], [2.0, 2.0], [3.0]]  # totals 2, 4, 3
    grid = stats.compute_grid(costs, points=5)
    assert grid.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    b = stats.compute_band(curves, costs, grid)
    # At 1 s: seed 0 has 0.2; at 2 s: 0.6, 0.4; at 3 s: 0.4 (seed 0 has stopped), 0.3;
    # at 4 s: 0.8 alone.
    assert same(b.median, [NAN, 0.2, 0.5, 0.35, 0.8])
    assert b.n.tolist() == [0, 1, 2, 2, 1]
    assert same(b.q25, [NAN, 0.2, 0.45, 0.325, 0.8])
    assert stats.compute_grid([[]], points=3).tolist() == [0.0, 0.0, 0.0]


# Found by mutation testing (mutmut over hpo/compare/stats.py): an interval at the wrong
# level, or one collapsed to a point, and empty arms, were not pinned by any test.


def test_the_compute_fraction_interval_has_the_exact_bootstrap_quantiles() -> None:
    """Arm seeds 1..20 s, baseline 100 s. The bootstrap median (the lower median of 20
    draws, the 10th order statistic) is <= k with probability P(Binomial(20, k/20) >= 10):
    0.0139 at k=5, 0.048 at 6, 0.9468 at 13, 0.9829 at 14, so the 95% interval is exactly
    [6/100, 14/100] (an 80% one would be [0.07, 0.13]); 10,000 resamples cannot miss by the
    margins around 0.025 and 0.975."""
    ci = stats.compute_fraction_ci([float(s) for s in range(1, 21)], [100.0] * 20)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((0.10, 0.06, 0.14))
    narrower = stats.compute_fraction_ci(
        [float(s) for s in range(1, 21)], [100.0] * 20, confidence=0.8
    )
    assert (narrower.low, narrower.high) == pytest.approx((0.07, 0.13))


def test_an_empty_arm_gives_no_interval_and_no_test() -> None:
    empty = stats.compute_fraction_ci([2.0], [])
    assert all(math.isnan(v) for v in (empty.estimate, empty.low, empty.high))
    nothing = stats.bootstrap_ci([NAN, NAN])
    assert all(math.isnan(v) for v in (nothing.estimate, nothing.low, nothing.high))
    for a, b in (([], [1.0, 2.0]), ([1.0, 2.0], []), ([NAN], [1.0])):
        test = stats.mann_whitney(a, b, "maximize")
        assert all(math.isnan(v) for v in (test.u, test.p_value, test.p_better))


def test_one_seed_against_several_is_still_tested() -> None:
    test = stats.mann_whitney([9.0], [1.0, 2.0, 3.0], "maximize")
    assert test.u == 3.0 and test.p_better == 1.0 and 0 < test.p_value <= 1
