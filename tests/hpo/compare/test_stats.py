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
