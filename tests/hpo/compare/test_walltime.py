"""Wall time to target: the study's clock when its best first reaches the target."""

from __future__ import annotations

import math

import pytest

from hpo.compare.runs import RunRow
from hpo.compare.walltime import wall_fractions, wall_to_target


def study(arm: str, seed: int, trials: list[tuple[str, float | None, float]]) -> list[RunRow]:
    """Rows of one study: (state, value, clock at its finish); compute is not read."""
    return [
        RunRow(arm, seed, i, state, value, None, 0.0, clock)
        for i, (state, value, clock) in enumerate(trials)
    ]


def test_the_clock_at_the_first_trial_that_reaches_the_target() -> None:
    rows = study("random", 0, [("COMPLETE", 0.5, 10.0), ("COMPLETE", 0.9, 25.0)]) + study(
        "random", 1, [("PRUNED", 0.95, 4.0), ("COMPLETE", 0.8, 6.0), ("COMPLETE", 0.92, 9.5)]
    )
    result = wall_to_target(rows, 0.9, "maximize")["random"]
    # A pruned trial's value never counts as a best (its curve was cut short).
    assert result.per_seed == pytest.approx((25.0, 9.5))
    assert result.reached == 2 and result.median.estimate == pytest.approx(9.5)


def test_a_seed_that_never_reaches_is_censored_and_an_arm_short_of_half_is_never() -> None:
    rows = [
        *study("random", 0, [("COMPLETE", 0.95, 5.0)]),
        *study("random", 1, [("COMPLETE", 0.95, 7.0)]),
        *study("tpe", 0, [("COMPLETE", 0.5, 3.0)]),
        *study("tpe", 1, [("FAIL", None, 1.0), ("COMPLETE", 0.6, 2.0)]),
    ]
    per_arm = wall_to_target(rows, 0.9, "maximize")
    assert per_arm["tpe"].per_seed == (None, None)
    assert math.isinf(per_arm["tpe"].median.estimate)
    assert math.isinf(wall_fractions(per_arm, "random")["tpe"].estimate)


def test_fractions_against_the_baseline_minimize() -> None:
    rows = [
        row
        for s in range(3)
        for row in study("random", s, [("COMPLETE", 1.0, 20.0), ("COMPLETE", 0.1, 40.0)])
        + study("tpe", s, [("COMPLETE", 0.1, 10.0)])
    ]
    per_arm = wall_to_target(rows, 0.2, "minimize")
    assert per_arm["random"].median.estimate == pytest.approx(40.0)
    assert wall_fractions(per_arm, "random")["tpe"].estimate == pytest.approx(0.25)
